namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>A synchronous IProgress (Progress&lt;T&gt; posts asynchronously) that keeps every report.</summary>
public sealed class RecordingProgress<T> : IProgress<T>
{
    public List<T> Reports { get; } = [];

    public void Report(T value) => Reports.Add(value);
}
