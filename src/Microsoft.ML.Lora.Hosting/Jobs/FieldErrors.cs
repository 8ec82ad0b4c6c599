namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>Validation errors by request field (<c>training.learningRate</c>), as the 400 body lists them.</summary>
public sealed class FieldErrors
{
    private readonly SortedDictionary<string, List<string>> errors = new(StringComparer.Ordinal);

    /// <summary>True when no error was added.</summary>
    public bool IsEmpty => errors.Count == 0;

    /// <summary>Adds <paramref name="message"/> under <paramref name="field"/>.</summary>
    public void Add(string field, string message)
    {
        if (!errors.TryGetValue(field, out var list))
        {
            errors[field] = list = [];
        }

        list.Add(message);
    }

    /// <summary>Adds <paramref name="message"/> under <paramref name="field"/> unless <paramref name="ok"/>.</summary>
    public void Require(bool ok, string field, string message)
    {
        if (!ok)
        {
            Add(field, message);
        }
    }

    /// <summary>The errors as the response body's <c>errors</c> object.</summary>
    public IReadOnlyDictionary<string, string[]> ToDictionary() => errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
}

/// <summary>A request path leaves its configured root (<c>..</c>, an absolute path elsewhere, or a symlink out): answered 403.</summary>
/// <param name="field">The request field.</param>
/// <param name="message">What was refused.</param>
public sealed class PathEscapeException(string field, string message) : Exception(message)
{
    /// <summary>The request field that named the path.</summary>
    public string Field { get; } = field;
}
