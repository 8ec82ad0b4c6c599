using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>Text in, text out: a tiny model fine-tuned on prompt/completion pairs answers with the completions.</summary>
public sealed class FineTuneAndGenerateTests : IDisposable
{
    private static readonly (string Prompt, string Completion)[] Pairs =
    [
        ("capital of France? ", "Paris"),
        ("2+2=", "4"),
        ("color of the sky? ", "blue"),
        ("opposite of hot? ", "cold"),
        ("dog says ", "woof"),
        ("été → ", "summer"),
    ];

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-text-" + Guid.NewGuid().ToString("N"));

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void FineTunedModelAnswersTheTrainingPromptsGreedily()
    {
        string dir = TinyTextModel.Create(Path.Combine(root, "model"));
        string data = Path.Combine(root, "pairs.jsonl");
        File.WriteAllLines(data, Pairs.Select(p => System.Text.Json.JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Completion })));

        var tokenizer = Tokenizer.Load(dir);
        var rows = TextDataset.Load(data, tokenizer);

        // Loss only on the completion and its EOS: the prompt's labels are all −100.
        var first = rows[0];
        int promptTokens = tokenizer.Encode(Pairs[0].Prompt, addSpecialTokens: false).Length;
        Assert.All(first.Labels![..promptTokens], l => Assert.Equal(-100, l));
        Assert.Equal(TinyTextModel.Eos, first.Labels[^1]);

        using var model = LlamaForCausalLM.Load(dir);
        model.SetTrainable(true);
        using (var trainer = new Trainer(model, new TrainingOptions { LearningRate = 3e-3, BatchSize = 6, MaxSteps = 150, WarmupSteps = 5, Schedule = LearningRateScheduleKind.Cosine, Seed = 1 }))
        {
            trainer.Train(rows);
        }

        foreach (var (prompt, completion) in Pairs)
        {
            var ids = Generator.Generate(model, tokenizer.Encode(prompt, addSpecialTokens: false), new GenerationOptions { MaxNewTokens = 16, StopTokenIds = [TinyTextModel.Eos] }).ToList();
            Assert.Equal(TinyTextModel.Eos, ids[^1]);
            Assert.Equal(completion, tokenizer.Decode(ids[..^1].ToArray()));
        }
    }
}
