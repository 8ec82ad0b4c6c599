using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Examples;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// The <c>pipeline</c> mode's model folder: a random Llama of <see cref="Config"/> with the examples'
/// byte-level tokenizer (<see cref="TinyModel"/>), whose vocabulary is padded with special tokens
/// &lt;extra_N&gt; up to the model's vocabulary so every id the model can produce decodes.
/// </summary>
internal static class PipelineBenchModel
{
    public static LlamaConfig Config { get; } =
        LlamaConfig.Create(vocabSize: 1024, hiddenSize: 256, intermediateSize: 688, numHiddenLayers: 4, numAttentionHeads: 4, numKeyValueHeads: 2);

    public static string Create(string directory)
    {
        string tiny = TinyModel.Create(directory + ".tokenizer");
        try
        {
            using (var model = LlamaForCausalLM.CreateRandom(Config, seed: 1))
            {
                model.Norm.Weight.Value.AsF32().Fill(8f);
                model.Save(directory);
            }

            var tokenizer = JsonNode.Parse(File.ReadAllText(Path.Combine(tiny, "tokenizer.json")))!;
            var added = tokenizer["added_tokens"]!.AsArray();
            for (int id = 258; id < Config.VocabSize; id++)
            {
                added.Add(new JsonObject
                {
                    ["id"] = id, ["content"] = $"<extra_{id}>", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
                });
            }

            File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString());
            File.Copy(Path.Combine(tiny, "tokenizer_config.json"), Path.Combine(directory, "tokenizer_config.json"));
        }
        finally
        {
            Directory.Delete(tiny, recursive: true);
        }

        return directory;
    }
}
