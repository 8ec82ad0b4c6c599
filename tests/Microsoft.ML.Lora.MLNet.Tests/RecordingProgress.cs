namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>A synchronous IProgress (Progress&lt;T&gt; posts asynchronously) that keeps every report and can act on it.</summary>
public sealed class RecordingProgress<T>(Action<T>? onReport = null) : IProgress<T>
{
    public List<T> Reports { get; } = [];

    public void Report(T value)
    {
        Reports.Add(value);
        onReport?.Invoke(value);
    }
}
