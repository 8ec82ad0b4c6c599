using System.Diagnostics;
using Microsoft.ML.OnnxRuntimeGenAI;

// Serves one exported base model with several LoRA adapters: each request names its adapter (or none), and the
// reply streams token by token. The folder comes from `lora export-onnx --genai --adapters-as-inputs`, the
// adapters from `lora export-adapter`.
//   OnnxGenAIChat --model DIR [--adapter NAME=FILE.onnx_adapter]... [--prompt TEXT]... [--max-new-tokens N] [--provider cpu|cuda]
var adapterFiles = new List<(string Name, string File)>();
var prompts = new List<string>();
string? folder = null, provider = null;
int maxNewTokens = 64;
for (int i = 0; i < args.Length; i++)
{
    string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--model": folder = Value(); break;
        case "--prompt": prompts.Add(Value()); break;
        case "--max-new-tokens": maxNewTokens = int.Parse(Value(), System.Globalization.CultureInfo.InvariantCulture); break;
        case "--provider": provider = Value(); break;
        case "--adapter":
            string spec = Value();
            int eq = spec.IndexOf('=');
            adapterFiles.Add(eq > 0 ? (spec[..eq], spec[(eq + 1)..]) : (Path.GetFileNameWithoutExtension(spec), spec));
            break;
        default:
            Console.Error.WriteLine($"error: unknown option '{args[i]}'");
            return 2;
    }
}

if (folder is null)
{
    Console.Error.WriteLine("usage: OnnxGenAIChat --model DIR [--adapter NAME=FILE.onnx_adapter]... [--prompt TEXT]... [--max-new-tokens N] [--provider cpu|cuda]");
    return 2;
}

if (prompts.Count == 0)
{
    prompts.Add("Once upon a time");
}

using var config = new Config(folder);
if (provider is not null and not "cpu")
{
    // The CUDA execution provider needs the Microsoft.ML.OnnxRuntimeGenAI.Cuda package and an NVIDIA driver.
    config.ClearProviders();
    config.AppendProvider(provider);
}

using var model = new Model(config);
using var tokenizer = new Tokenizer(model);

// Stories start with the model's BOS token, as in training.
tokenizer.UpdateOptions(new Dictionary<string, string> { ["add_special_tokens"] = "true" });
using var adapters = new Adapters(model);
foreach (var (name, file) in adapterFiles)
{
    adapters.LoadAdapter(file, name);
}

// One request per prompt and adapter: the same base serves them all, the adapter is chosen per generator.
foreach (string prompt in prompts)
{
    foreach (string? adapter in adapterFiles.Select(static a => (string?)a.Name).Prepend(null))
    {
        Console.WriteLine($"## {adapter ?? "base"}");
        using var input = tokenizer.Encode(prompt);
        using var options = new GeneratorParams(model);
        options.SetSearchOption("max_length", input[0].Length + maxNewTokens);
        using var generator = new Generator(model, options);
        if (adapter is not null)
        {
            generator.SetActiveAdapter(adapters, adapter);
        }

        generator.AppendTokenSequences(input);
        using var stream = tokenizer.CreateStream();
        Console.Write(prompt);
        var clock = Stopwatch.StartNew();
        int produced = 0;
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
            Console.Write(stream.Decode(generator.GetNextTokens()[0]));
            produced++;
        }

        Console.WriteLine();
        Console.WriteLine($"({produced} tokens, {produced / clock.Elapsed.TotalSeconds:F0} tokens/s)");
    }
}

return 0;
