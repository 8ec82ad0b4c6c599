using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>The rank advice follows adapter capacity vs data information.</summary>
public sealed class LoraAdvisorTests
{
    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("llama_tied_headdim")]
    public void ParametersPerRankCountsWhatAddAdapterCreates(string name)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        var adapters = model.AddAdapter(new LoraOptions { Rank = 1 });
        long actual = adapters.Sum(a => a.A.Value.Length + a.B.Value.Length);
        Assert.Equal(actual, LoraAdvisor.ParametersPerRank(model.Config));
    }

    [Fact]
    public void RankCoversTheDataAndSaysWhy()
    {
        var config = LlamaConfig.Create(vocabSize: 32000, hiddenSize: 2048, intermediateSize: 5632, numHiddenLayers: 22, numAttentionHeads: 32, numKeyValueHeads: 4);
        long perRank = LoraAdvisor.ParametersPerRank(config);

        var small = LoraAdvisor.Advise(config, rows: 1000, trainedTokens: 200_000);
        Assert.Equal(8, small.Rank);
        Assert.Equal(2e-4, small.LearningRate, 1e-12);
        Assert.Equal(16, small.BatchSize);
        Assert.Equal(3, small.Epochs);

        // 2e8 tokens → 1e8 parameters needed at 2 bits each.
        var large = LoraAdvisor.Advise(config, rows: 500_000, trainedTokens: 200_000_000);
        Assert.True(large.AdapterParameters * LoraAdvisor.BitsPerParameter >= 200_000_000 * LoraAdvisor.BitsPerToken, $"rank {large.Rank} gives {large.AdapterParameters} parameters");
        Assert.True((large.Rank / 2) * perRank * LoraAdvisor.BitsPerParameter < 200_000_000 * LoraAdvisor.BitsPerToken, "the smallest sufficient power of two");
        Assert.Equal(1, large.Epochs);
        Assert.Contains(large.Reasons, r => r.StartsWith($"rank {large.Rank}:", StringComparison.Ordinal));

        var huge = LoraAdvisor.Advise(config, rows: 10_000_000, trainedTokens: 100_000_000_000);
        Assert.Equal(256, huge.Rank);
        Assert.Contains(huge.Reasons, r => r.Contains("full fine-tuning", StringComparison.Ordinal));
        Assert.Throws<ArgumentException>(() => LoraAdvisor.Advise(config, 0, 0));
    }

    [Fact]
    public void PreferenceAdviceKeepsRankBetweenOneAndEightAndTheRateTenTimesFullFineTuning()
    {
        var config = LlamaConfig.Create(vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numHiddenLayers: 32, numAttentionHeads: 32, numKeyValueHeads: 32);
        var typical = LoraAdvisor.AdvisePreference(config, pairs: 60_000);
        Assert.Equal(1, typical.Rank);
        Assert.Equal(5e-6, typical.LearningRate, 1e-15);
        Assert.Equal(1, typical.Epochs);
        Assert.Contains(typical.Reasons, r => r.Contains("rank 1–8", StringComparison.Ordinal));

        // Far more pairs than rank 1 holds bits: the rank grows, but never past 8.
        long perRank = LoraAdvisor.ParametersPerRank(config);
        Assert.Equal(4, LoraAdvisor.AdvisePreference(config, pairs: perRank * 6).Rank);
        Assert.Equal(8, LoraAdvisor.AdvisePreference(config, pairs: perRank * 1000).Rank);
        Assert.Throws<ArgumentException>(() => LoraAdvisor.AdvisePreference(config, 0));
    }
}
