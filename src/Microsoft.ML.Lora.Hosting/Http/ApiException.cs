namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>A request the service refuses with <paramref name="status"/>: a field error (400) when <paramref name="field"/> is set, else <c>{"error": message}</c>.</summary>
internal sealed class ApiException(int status, string message, string? field = null) : Exception(message)
{
    public int Status { get; } = status;

    public string? Field { get; } = field;
}
