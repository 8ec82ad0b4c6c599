using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>A regression training row: token ids and the target value.</summary>
internal readonly record struct RegressionRow(int[] Ids, float Target, int Line);

/// <summary>
/// The training run of the regression trainer, step for step the engine's <see cref="Trainer"/> on a
/// streamed set (which trains with cross-entropy only): one counting pass, then each epoch reads the rows
/// again, shuffled through the same seeded buffer; AdamW, warmup and linear decay, global-norm clipping and
/// dropout seeds per micro-step as the Trainer has them; the loss is the mean squared error over the rows
/// of each step. Validation rows are scored at the end of every epoch and after the last step.
/// </summary>
internal static class RegressionTraining
{
    public static TrainingResult Train(
        LlamaForCausalLM model,
        TrainingOptions options,
        Func<IEnumerable<RegressionRow>> open,
        IReadOnlyList<RegressionRow>? validation,
        IProgress<TrainingProgress>? progress,
        CancellationToken cancellationToken)
    {
        options.Validate();
        int rows = 0, longest = 1;
        foreach (var row in open())
        {
            rows++;
            longest = Math.Max(longest, row.Ids.Length);
        }

        if (rows == 0)
        {
            throw new ArgumentException("no training rows: the training data is empty", nameof(open));
        }

        int microPerEpoch = (rows + options.BatchSize - 1) / options.BatchSize;
        int stepsPerEpoch = (microPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps;
        int total = options.MaxSteps ?? checked(options.Epochs * stepsPerEpoch);
        int warmup = Math.Min(options.WarmupSteps ?? (int)Math.Ceiling(options.WarmupRatio * total), total);
        var schedule = new LearningRateSchedule(options.Schedule, options.LearningRate, warmup, total);
        var trainable = model.TrainableParameters().ToArray();
        using var optimizer = new AdamW(trainable, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        int ropeLength = Math.Max(longest, validation is { Count: > 0 } ? validation.Max(static r => r.Ids.Length) : 1);
        using var rope = RopeTable.Create(model.Config.HeadDim, model.Config.RopeTheta, model.Config.RopeScaling, Math.Max(ropeLength, 64));

        var losses = new List<double>(total);
        double? lastValidation = null, bestValidation = null;
        IEnumerator<RegressionRow>? epochRows = null;
        int currentEpoch = -1;
        try
        {
            for (int step = 0; step < total; step++)
            {
                int epoch = step / stepsPerEpoch;
                if (epoch != currentEpoch)
                {
                    epochRows?.Dispose();
                    epochRows = Shuffled(open(), options, epoch).GetEnumerator();
                    currentEpoch = epoch;
                }

                var clock = System.Diagnostics.Stopwatch.StartNew();
                var micro = new List<RegressionRow[]>();
                for (int k = 0; k < options.GradientAccumulationSteps; k++)
                {
                    var batch = Take(epochRows!, options.BatchSize);
                    if (batch.Length == 0)
                    {
                        break;
                    }

                    micro.Add(batch);
                }

                if (micro.Count == 0)
                {
                    throw new InvalidOperationException($"the training data ended early in epoch {epoch}: it had {rows} rows when counted; the data view must give the same rows to every cursor");
                }

                foreach (var p in trainable)
                {
                    p.ZeroGrad();
                }

                int stepRows = micro.Sum(static m => m.Length);
                long firstMicroStep = ((long)epoch * microPerEpoch) + ((step % stepsPerEpoch) * options.GradientAccumulationSteps);
                double sum = 0;
                for (int k = 0; k < micro.Count; k++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var batch = micro[k];
                    sum += SequenceRegression.ForwardBackward(
                        model, rope, [.. batch.Select(static r => r.Ids)], [.. batch.Select(static r => r.Target)], 1.0 / stepRows, TrainingRandom.DropoutSeed(options.Seed, firstMicroStep + k));
                }

                double loss = sum / stepRows, lr = schedule.At(step);
                double gradNorm = Gradients.ClipGlobalNorm(trainable, options.MaxGradNorm);
                if (!double.IsFinite(loss) || !double.IsFinite(gradNorm))
                {
                    throw new TrainingDivergedException(step + 1, [.. micro.SelectMany(static m => m).Select(static r => r.Line)], loss, gradNorm, lr);
                }

                optimizer.Step(lr);
                losses.Add(loss);
                double seconds = clock.Elapsed.TotalSeconds;
                var report = new TrainingProgress(step + 1, total, (double)(step + 1) / stepsPerEpoch, loss, lr, gradNorm, stepRows, seconds > 0 ? stepRows / seconds : 0, null);
                bool epochEnd = (step + 1) % stepsPerEpoch == 0 || step + 1 == total;
                if (validation is { Count: > 0 } && epochEnd)
                {
                    double mse = MeanSquaredError(model, validation, options.BatchSize, cancellationToken);
                    lastValidation = mse;
                    bestValidation = bestValidation is double best && best <= mse ? best : mse;
                    report = report with { ValidationLoss = mse };
                }

                progress?.Report(report);
            }
        }
        finally
        {
            epochRows?.Dispose();
        }

        return new TrainingResult(total, losses, lastValidation, bestValidation, 0, null);
    }

    /// <summary>Mean of (y − t)² over <paramref name="rows"/>, the model as it is.</summary>
    public static double MeanSquaredError(LlamaForCausalLM model, IReadOnlyList<RegressionRow> rows, int batchSize, CancellationToken cancellationToken)
    {
        var predictions = SequenceRegression.Predict(model, [.. rows.Select(static r => r.Ids)], batchSize, cancellationToken);
        double sum = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            double error = predictions[i] - (double)rows[i].Target;
            sum += error * error;
        }

        return sum / rows.Count;
    }

    private static RegressionRow[] Take(IEnumerator<RegressionRow> rows, int count)
    {
        var batch = new List<RegressionRow>(count);
        while (batch.Count < count && rows.MoveNext())
        {
            batch.Add(rows.Current);
        }

        return [.. batch];
    }

    // The engine's streamed-epoch shuffle: a buffer of StreamShuffleBuffer rows, seeded by (seed, epoch).
    private static IEnumerable<RegressionRow> Shuffled(IEnumerable<RegressionRow> rows, TrainingOptions options, int epoch) =>
        TrainingData.StreamShuffle(rows, options, epoch);
}
