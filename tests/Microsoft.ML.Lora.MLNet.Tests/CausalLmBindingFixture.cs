using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Pipeline;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>One LoRA SFT run through ML.NET (LoadFromEnumerable → Transforms.Text.LoraCausalLm) on a tiny random model.</summary>
public sealed class CausalLmBindingFixture : IDisposable
{
    public static readonly PromptRow[] Rows =
    [
        new("capital of France? ", "Paris"),
        new("2+2=", "4"),
        new("color of the sky? ", "blue"),
        new("opposite of hot? ", "cold"),
        new("dog says ", "woof"),
        new("été → ", "summer"),
    ];

    public CausalLmBindingFixture()
    {
        Root = Directory.CreateTempSubdirectory("lora-mlnet-lm-").FullName;
        Options = new LoraCausalLmOptions
        {
            ModelPath = PipelineTestModels.CausalLm(Path.Combine(Root, "model")),
            Lora = new LoraOptions { Rank = 8 },
            Training = new TrainingOptions { LearningRate = 1e-2, BatchSize = 6, MaxSteps = 120, WarmupSteps = 5, Seed = 1 },
            Generation = new GenerationOptions { MaxNewTokens = 16 },
        };
        Data = Ml.Data.LoadFromEnumerable(Rows);
        Transformer = Ml.Transforms.Text.LoraCausalLm(Options, Progress).Fit(Data);
    }

    public MLContext Ml { get; } = new(seed: 1);

    public string Root { get; }

    public LoraCausalLmOptions Options { get; }

    public IDataView Data { get; }

    public RecordingProgress<TrainingProgress> Progress { get; } = new();

    public LoraCausalLmPredictionTransformer Transformer { get; }

    public void Dispose()
    {
        Transformer.Dispose();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>A training row as ML.NET's LoadFromEnumerable reads it (string properties become String columns).</summary>
    public sealed class PromptRow(string prompt, string completion)
    {
        public string Prompt { get; set; } = prompt;

        public string Completion { get; set; } = completion;
    }
}
