using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.Lora.Hosting;

/// <summary>The service's JSON conventions: camelCase names, lowercase enums, unknown request fields refused.</summary>
internal static class HostingJson
{
    /// <summary>Options for responses and events.</summary>
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        // An API answer, never embedded in HTML: keep '<', '>' and non-ASCII readable in error messages.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    /// <summary>Options for request bodies: as <see cref="Options"/>, and a misspelt field is an error rather than silently ignored.</summary>
    public static JsonSerializerOptions Requests { get; } = new(Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };
}
