using Microsoft.ML.Lora.Models;

namespace HostedService;

/// <summary>
/// A tiny random Llama (2 layers, hidden 32, vocabulary 64) and a tokenized data set whose rows follow a
/// simple pattern (each token is the previous plus a per-row stride), so the loss falls within a few steps.
/// </summary>
internal sealed record TinyWorkspace(string Model, string Dataset)
{
    private const int Vocab = 64;

    /// <summary>Writes both under the service's model and dataset roots (once); returns their names relative to the roots.</summary>
    public static TinyWorkspace Create(string modelRoot, string datasetRoot)
    {
        const string model = "tiny-llama";
        const string dataset = "counting.jsonl";
        string modelDir = Path.Combine(modelRoot, model);
        if (!File.Exists(Path.Combine(modelDir, "config.json")))
        {
            var config = LlamaConfig.Create(vocabSize: Vocab, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
            using var llama = LlamaForCausalLM.CreateRandom(config, seed: 7);
            llama.Save(modelDir);
        }

        string dataPath = Path.Combine(datasetRoot, dataset);
        if (!File.Exists(dataPath))
        {
            Directory.CreateDirectory(datasetRoot);
            var lines = new List<string>();
            for (int row = 0; row < 64; row++)
            {
                int start = 3 + (row * 7) % (Vocab - 3), stride = 1 + row % 3;
                IEnumerable<int> ids = Enumerable.Range(0, 16).Select(i => 3 + (start - 3 + i * stride) % (Vocab - 3));
                lines.Add($"{{\"input_ids\": [{string.Join(", ", ids)}]}}");
            }

            string temp = dataPath + ".tmp";
            File.WriteAllLines(temp, lines);
            File.Move(temp, dataPath, overwrite: true);
        }

        return new TinyWorkspace(model, dataset);
    }
}
