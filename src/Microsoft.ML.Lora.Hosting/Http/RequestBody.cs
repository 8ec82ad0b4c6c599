using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>
/// Reads a JSON request body into <typeparamref name="T"/>: a body over the size limit is 413, malformed
/// JSON, a wrong type or an unknown field is a 400 field error named by its JSON path.
/// </summary>
internal static class RequestBody<T>
    where T : class, new()
{
    /// <summary>The value and its raw JSON, or throws <see cref="ApiException"/>.</summary>
    public static async Task<(T Value, string Json)> ReadAsync(HttpRequest request, bool optional, CancellationToken cancellationToken)
    {
        JsonDocument document;
        try
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (buffer.Length == 0)
            {
                return optional ? (new T(), "{}") : throw new ApiException(400, "the body must be a JSON object", "$");
            }

            buffer.Position = 0;
            document = await JsonDocument.ParseAsync(buffer, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e)
        {
            throw new ApiException(e.StatusCode, e.StatusCode == StatusCodes.Status413PayloadTooLarge ? "request body too large" : e.Message);
        }
        catch (JsonException e)
        {
            throw new ApiException(400, $"not valid JSON: {e.Message}", "$");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ApiException(400, "the body must be a JSON object", "$");
            }

            try
            {
                var value = document.RootElement.Deserialize<T>(HostingJson.Requests) ?? new T();
                return (value, document.RootElement.GetRawText());
            }
            catch (JsonException e)
            {
                throw new ApiException(400, Describe(e), FieldOf(e));
            }
        }
    }

    // "$.training.learningRate" → "training.learningRate"; an unknown member is reported at its own name.
    private static string FieldOf(JsonException e)
    {
        string path = e.Path ?? "$";
        string field = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;
        return field.Length == 0 ? "$" : field;
    }

    private static string Describe(JsonException e) =>
        e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "unknown field" : "has the wrong type";
}
