using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>Options validation, PEFT-style target resolution, bias modes, rank/alpha patterns.</summary>
public sealed class LoraOptionsTests
{
    [Fact]
    public void InvalidValuesNameTheOption()
    {
        Assert.Equal("Rank", Assert.Throws<ArgumentOutOfRangeException>(() => new LoraOptions { Rank = 0 }).ParamName);
        Assert.Equal("Alpha", Assert.Throws<ArgumentOutOfRangeException>(() => new LoraOptions { Alpha = 0 }).ParamName);
        Assert.Equal("Alpha", Assert.Throws<ArgumentOutOfRangeException>(() => new LoraOptions { Alpha = double.NaN }).ParamName);
        Assert.Equal("Dropout", Assert.Throws<ArgumentOutOfRangeException>(() => new LoraOptions { Dropout = 1 }).ParamName);
        Assert.Equal("TargetModules", Assert.Throws<ArgumentException>(() => new LoraOptions { TargetModules = [] }).ParamName);
        Assert.Equal("LayersToTransform", Assert.Throws<ArgumentException>(() => new LoraOptions { LayersToTransform = [-1] }).ParamName);
        Assert.Equal("RankPattern", Assert.Throws<ArgumentException>(() => new LoraOptions { RankPattern = new Dictionary<string, int> { ["q_proj"] = 0 } }).ParamName);
    }

    [Fact]
    public void DefaultsFollowTheLiterature()
    {
        var o = new LoraOptions();
        Assert.Equal(8, o.Rank);
        Assert.Equal(32, o.Alpha);
        Assert.Equal([LoraOptions.AllLinear], o.TargetModules);
        Assert.Equal(LoraBias.None, o.Bias);
        Assert.Equal(4f, o.ScaleFor(8, 32));
        Assert.Equal(32f / MathF.Sqrt(8), (o with { UseRsLora = true }).ScaleFor(8, 32));
    }

    [Fact]
    public void AllLinearAdaptsEveryProjectionButTheHead()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = model.AddAdapter(new LoraOptions());
        Assert.Equal(model.Layers.Length * 7, adapters.Count);
        Assert.DoesNotContain(adapters, a => a.ModuleName == "lm_head");
        Assert.Contains(adapters, a => a.ModuleName == "model.layers.1.mlp.down_proj");
        Assert.Equal("model.layers.0.self_attn.q_proj.lora_A.default.weight", adapters[0].A.Name);
    }

    [Fact]
    public void NamesMatchWholePathSegmentsOnly()
    {
        Assert.True(LoraTargets.NameMatches("model.layers.0.self_attn.q_proj", "q_proj"));
        Assert.True(LoraTargets.NameMatches("model.layers.0.self_attn.q_proj", "self_attn.q_proj"));
        Assert.True(LoraTargets.NameMatches("lm_head", "lm_head"));
        Assert.False(LoraTargets.NameMatches("model.layers.0.self_attn.q_proj", "proj"));
        Assert.False(LoraTargets.NameMatches("model.layers.0.self_attn.q_proj", "_proj"));
    }

    [Fact]
    public void UnknownTargetListsTheModelsLinearLayers()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var e = Assert.Throws<ArgumentException>(() => model.AddAdapter(new LoraOptions { TargetModules = ["q_proj", "query_key_value"] }));
        Assert.Contains("'query_key_value'", e.Message, StringComparison.Ordinal);
        Assert.Contains("self_attn.q_proj", e.Message, StringComparison.Ordinal);
        Assert.Contains("mlp.down_proj", e.Message, StringComparison.Ordinal);
        Assert.Empty(model.Adapters());
    }

    [Fact]
    public void LayersToTransformAndPatternsSelectAndOverride()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = model.AddAdapter(new LoraOptions
        {
            Rank = 4,
            Alpha = 8,
            TargetModules = ["q_proj", "v_proj"],
            LayersToTransform = [1],
            RankPattern = new Dictionary<string, int> { ["v_proj"] = 2 },
            AlphaPattern = new Dictionary<string, double> { ["layers\\.1\\.self_attn\\.q_proj"] = 16 },
        });
        Assert.Equal(["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"], adapters.Select(a => a.ModuleName));
        Assert.Equal(4, adapters[0].Rank);
        Assert.Equal(16f / 4, adapters[0].Scale);
        Assert.Equal(2, adapters[1].Rank);
        Assert.Equal(8f / 2, adapters[1].Scale);
        Assert.Throws<ArgumentException>(() => model.AddAdapter(new LoraOptions { LayersToTransform = [5] }, "other"));
    }

    [Fact]
    public void BiasModesAndModulesToSaveChooseWhatTrains()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        model.AddAdapter(new LoraOptions { Rank = 2, TargetModules = ["q_proj"], Bias = LoraBias.LoraOnly });
        var trainable = model.TrainableParameters().Select(p => p.Name).ToHashSet();
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", trainable);
        Assert.DoesNotContain("model.layers.0.self_attn.k_proj.bias", trainable);
        Assert.DoesNotContain("model.layers.0.self_attn.q_proj.weight", trainable);

        using var other = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        other.AddAdapter(new LoraOptions { Rank = 2, ModulesToSave = ["lm_head"] });
        Assert.Contains("lm_head.weight", other.TrainableParameters().Select(p => p.Name));
        Assert.Throws<ArgumentException>(() => other.AddAdapter(new LoraOptions { ModulesToSave = ["score"] }, "x"));

        using var bf16 = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"), DType.BF16);
        Assert.Throws<ArgumentException>(() => bf16.AddAdapter(new LoraOptions { ModulesToSave = ["lm_head"] }));
    }

    [Fact]
    public void PissaTakesTheTopSingularPartAndStartsAtTheBaseFunction()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var linear = model.Layers[0].Mlp.GateProj!;
        var w = linear.Weight.Value.ToFloatArray();
        int m = linear.OutFeatures, n = linear.InFeatures, r = 4;

        // Exact singular values from the eigenvalues of WᵀW (Jacobi, double).
        var gram = new double[n * n];
        for (int a = 0; a < n; a++)
        {
            for (int b = 0; b < n; b++)
            {
                double dot = 0;
                for (int i = 0; i < m; i++)
                {
                    dot += (double)w[(i * n) + a] * w[(i * n) + b];
                }

                gram[(a * n) + b] = dot;
            }
        }

        var exact = Pissa.SymmetricEigen(gram, n).Values.OrderDescending().Take(r).Select(Math.Sqrt).ToArray();
        var (_, sigma, _) = Pissa.TopSingular(w, m, n, r, new Random(1));
        for (int k = 0; k < r; k++)
        {
            // Randomized subspace iteration with 4 power steps: relative error ≪ 1e-6 on this spectrum.
            Assert.Equal(exact[k], sigma[k], exact[k] * 1e-6);
        }

        var batch = CausalLmBatch.FromRows([[1, 5, 9, 2, 7], [3, 3, 8]]);
        var baseLogits = LoraAdapterTests.Logits(model, batch);
        var adapters = model.AddAdapter(new LoraOptions { Rank = r, Init = LoraInit.Pissa, TargetModules = ["gate_proj"] });
        Assert.NotEqual(0f, adapters[0].B.Value.AsF32().ToArray().Max(Math.Abs));
        var residual = model.Layers[0].Mlp.GateProj!.Weight.Value.ToFloatArray();
        Assert.NotEqual(w, residual);

        // W_res + s·B·A reproduces W (F32 rounding of the residual), so the model starts where it was.
        ReferenceModelTests.AssertClose(baseLogits, LoraAdapterTests.Logits(model, batch), 1e-5, "PiSSA initial logits");
    }

    [Fact]
    public void SaveAdapterWritesTheOptionsTheAdapterWasCreatedWith()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.AddAdapter(new LoraOptions { Rank = 4, Alpha = 12, UseRsLora = true, Dropout = 0.1, TargetModules = ["q_proj", "v_proj"] });
        string dir = Path.Combine(Path.GetTempPath(), "lora-opts-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.SaveAdapter(dir);
            var config = PeftAdapterConfig.Read(Path.Combine(dir, PeftAdapterConfig.FileName));
            Assert.True(config.UseRsLora);
            Assert.Equal(12, config.Alpha);
            Assert.Equal(4, config.Rank);
            Assert.Equal(0.1, config.Dropout, 1e-12);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
