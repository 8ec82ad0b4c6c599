using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Regression in Hugging Face's <c>…ForSequenceClassification</c> shape with <c>num_labels = 1</c> and
/// <c>problem_type = "regression"</c>: the <c>score</c> head (1, C) read at each row's last token gives the
/// prediction y, and the loss is the mean squared error (y − t)², transformers' <c>MSELoss</c>. The engine's
/// model trains with cross-entropy only, so this runs the same modules forward and backward with that loss;
/// prediction uses the model's own classifier forward (<see cref="SequenceClassification.Logits"/>, K = 1).
/// </summary>
internal static class SequenceRegression
{
    /// <summary>
    /// Forward and backward of one micro-batch: adds d(<paramref name="gradientScale"/>·Σ (y − t)²)/dp to
    /// every trainable parameter's gradient and returns Σ (y − t)² over the rows.
    /// </summary>
    /// <param name="model">A classifier with one output (NumLabels 1) and trainable adapters or head.</param>
    /// <param name="rope">RoPE table covering the longest row.</param>
    /// <param name="rows">Token ids per row (each at least one), right-padded into (B, T).</param>
    /// <param name="targets">Target value per row.</param>
    /// <param name="gradientScale">1 / (rows of the optimizer step), so the step's gradient is that of the mean.</param>
    /// <param name="dropoutSeed">Seed of this micro-batch's adapter dropout masks.</param>
    public static double ForwardBackward(LlamaForCausalLM model, RopeTable rope, IReadOnlyList<int[]> rows, IReadOnlyList<float> targets, double gradientScale, ulong dropoutSeed)
    {
        // ids (B,T) -> x_0 … x_L (N,C), N = B·T -> pooled (B,C) at each row's last token -> norm -> y (B,1)
        int b = rows.Count, t = rows.Max(static r => r.Length), c = model.Config.HiddenSize, n = b * t, layers = model.Layers.Length;
        var ids = new int[n];
        for (int r = 0; r < b; r++)
        {
            rows[r].CopyTo(ids, r * t);
        }

        model.LoraRuntime.Training = true;
        model.LoraRuntime.DropoutSeed = dropoutSeed;
        var backend = model.Backend;
        var shape = new BatchShape(b, t);
        var xs = new Tensor[layers + 1];
        Tensor? dx = null, dprev = null;
        try
        {
            xs[0] = backend.Empty(DType.F32, n, c);
            backend.EmbeddingGather(ids, model.EmbedTokens.Value, xs[0]);
            for (int i = 0; i < layers; i++)
            {
                xs[i + 1] = backend.Empty(DType.F32, n, c);
                model.Layers[i].Forward(xs[i], xs[i + 1], shape, rope, forBackward: true);
            }

            using var pooled = backend.Empty(DType.F32, b, c);
            for (int r = 0; r < b; r++)
            {
                backend.Copy(xs[layers], (((long)r * t) + rows[r].Length - 1) * c, pooled, (long)r * c, c);
            }

            using var normed = backend.Empty(DType.F32, b, c);
            using var rstd = backend.Empty(DType.F32, b);
            model.Norm.Forward(pooled, normed, rstd);
            using var y = backend.Empty(DType.F32, b, 1);
            model.LmHead.Forward(normed, y);

            // d(scale·Σ (y − t)²)/dy = scale·2(y − t), on the host (B values).
            using var hostY = Tensor.Empty(DType.F32, b, 1);
            Tensor.CopyConverting(y, hostY);
            using var hostDy = Tensor.Empty(DType.F32, b, 1);
            var values = hostY.AsF32();
            var dy = hostDy.AsF32();
            double sum = 0;
            for (int r = 0; r < b; r++)
            {
                double error = values[r] - (double)targets[r];
                sum += error * error;
                dy[r] = (float)(gradientScale * 2 * error);
            }

            using var deviceDy = backend.FromHost(hostDy);
            using var dnormed = backend.Empty(DType.F32, b, c);
            model.LmHead.Backward(deviceDy, normed, dnormed);
            using var dpooled = backend.Empty(DType.F32, b, c);
            model.Norm.Backward(dnormed, pooled, rstd, dpooled);

            dx = backend.Zeros(DType.F32, n, c);
            for (int r = 0; r < b; r++)
            {
                backend.Copy(dpooled, (long)r * c, dx, (((long)r * t) + rows[r].Length - 1) * c, c);
            }

            dprev = backend.Empty(DType.F32, n, c);
            for (int i = layers - 1; i >= 0; i--)
            {
                model.Layers[i].Backward(dx, xs[i], dprev);
                (dx, dprev) = (dprev, dx);
            }

            return sum;
        }
        finally
        {
            foreach (var x in xs)
            {
                x?.Dispose();
            }

            dx?.Dispose();
            dprev?.Dispose();
            foreach (var layer in model.Layers)
            {
                // A no-op after Backward; after a failure it frees what Forward kept.
                layer.ReleaseActivations();
            }

            model.LoraRuntime.Training = false;
        }
    }

    /// <summary>The prediction y of each row (the head's one output at its last token), in batches.</summary>
    public static float[] Predict(LlamaForCausalLM model, IReadOnlyList<int[]> rows, int batchSize, CancellationToken cancellationToken) =>
        [.. SequenceClassification.Logits(model, rows, batchSize, cancellationToken).Select(static v => v[0])];
}
