using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>One LoRA SFT run on a tiny random model with a byte-level tokenizer, shared by the causal-LM pipeline tests.</summary>
public sealed class CausalLmPipelineFixture : IDisposable
{
    public static readonly (string Prompt, string Completion)[] Pairs =
    [
        ("capital of France? ", "Paris"),
        ("2+2=", "4"),
        ("color of the sky? ", "blue"),
        ("opposite of hot? ", "cold"),
        ("dog says ", "woof"),
        ("été → ", "summer"),
    ];

    public CausalLmPipelineFixture()
    {
        Root = Directory.CreateTempSubdirectory("lora-pipeline-lm-").FullName;
        ModelPath = PipelineTestModels.CausalLm(Path.Combine(Root, "model"));
        Options = new LoraCausalLmOptions
        {
            ModelPath = ModelPath,
            Lora = new LoraOptions { Rank = 8 },
            Training = new TrainingOptions { LearningRate = 1e-2, BatchSize = 6, MaxSteps = 120, WarmupSteps = 5, Seed = 1 },
            Generation = new GenerationOptions { MaxNewTokens = 16 },
        };
        Progress = new RecordingProgress<TrainingProgress>();
        Transformer = new LoraCausalLmEstimator(Options).Fit(Data, Progress);
    }

    public string Root { get; }

    public string ModelPath { get; }

    public LoraCausalLmOptions Options { get; }

    public RecordingProgress<TrainingProgress> Progress { get; }

    public LoraCausalLmTransformer Transformer { get; }

    public static TextTable Data => TextTable.FromColumns(("Prompt", Pairs.Select(p => p.Prompt).ToArray()), ("Completion", Pairs.Select(p => p.Completion).ToArray()));

    public void Dispose()
    {
        Transformer.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
