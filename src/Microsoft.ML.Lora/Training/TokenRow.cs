namespace Microsoft.ML.Lora.Training;

/// <summary>One tokenized example: input ids and optional labels (−100 = ignored; null = the ids themselves).</summary>
/// <param name="InputIds">Token ids.</param>
/// <param name="Labels">Labels of the same length, or null.</param>
/// <param name="Line">1-based line in the source file, for error messages.</param>
/// <param name="Positions">For a row packing several examples: each token's position within its example (see <see cref="Models.CausalLmBatch.Positions"/>); null for one example.</param>
/// <param name="Rejected">
/// For a preference pair (<see cref="DirectPreference.TrainingRow"/>): the prompt followed by the rejected completion,
/// while <paramref name="InputIds"/> holds the prompt and the chosen one and <paramref name="Labels"/> marks the chosen
/// completion (−100 on the prompt). Null for every other row.
/// </param>
/// <param name="Fields">The source row's other string fields (e.g. a reference answer), for GRPO's reward functions; null when none were kept.</param>
public sealed record TokenRow(int[] InputIds, int[]? Labels, int Line, int[]? Positions = null, int[]? Rejected = null, IReadOnlyDictionary<string, string>? Fields = null);
