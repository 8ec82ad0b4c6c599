using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Tests.Models;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>A classifier exported to ONNX gives, in ONNX Runtime, the pooled logits of <see cref="SequenceClassification.Logits"/>.</summary>
public sealed class SequenceClassificationOnnxTests
{
    // Same F32 weights, another runtime's kernels: the bar of LlamaOnnxExportTests (1e-4 of the logit scale).
    private const double F32Tolerance = 1e-4;

    [Fact]
    public void OnnxRuntimePooledLogitsOfARightPaddedBatchEqualOurs()
    {
        using var expected = SequenceClassificationReferenceTests.Expected();
        var rows = SequenceClassificationReferenceTests.Rows(expected);
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        model.LoadAdapter(SequenceClassificationReferenceTests.AdapterDir);
        var ours = SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(model, rows));

        using var folder = new TempFolder();
        string path = folder.File("classifier.onnx");
        LlamaOnnxExporter.Export(model, path);

        // Padding id 7 (not the pad token): the pooled position must come from attention_mask alone.
        int b = rows.Count, t = rows.Max(static r => r.Length);
        var ids = new long[b * t];
        var mask = new long[b * t];
        Array.Fill(ids, 7L);
        for (int r = 0; r < b; r++)
        {
            for (int i = 0; i < rows[r].Length; i++)
            {
                ids[(r * t) + i] = rows[r][i];
                mask[(r * t) + i] = 1;
            }
        }

        var outputs = OnnxRuntimeChecker.Run(path, new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64(ids, b, t),
            ["attention_mask"] = OnnxInput.Int64(mask, b, t),
        });
        var logits = outputs["logits"];
        Assert.Equal([b, 3], logits.Dims);
        ReferenceModelTests.AssertClose(ours, logits.AsFloats(), F32Tolerance, "ONNX Runtime pooled classifier logits");

        // And the reference itself (the adapter merged into the exported weights).
        ReferenceModelTests.AssertClose(expected.ReadFloats("pooled_logits"), logits.AsFloats(), F32Tolerance, "ONNX Runtime vs reference");
    }

    [Fact]
    public void KvCacheExportOfAClassifierIsRefused()
    {
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        using var folder = new TempFolder();
        var e = Assert.Throws<ArgumentException>(() => LlamaOnnxExporter.Export(model, folder.File("kv.onnx"), new OnnxExportOptions { KvCache = true }));
        Assert.Contains("sequence classifier", e.Message, StringComparison.Ordinal);
        Assert.Empty(folder.Entries());
    }
}
