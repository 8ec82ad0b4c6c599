using Microsoft.AspNetCore.Http;
using Microsoft.ML.Lora.Hosting.Jobs;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>The service's JSON answers: <c>{"error": "..."}</c>, <c>{"errors": {"field": ["..."]}}</c> and values.</summary>
internal static class ApiResults
{
    public static IResult Error(int status, string message) => Results.Json(new { error = message }, HostingJson.Options, statusCode: status);

    public static IResult FieldErrors(FieldErrors errors) => Results.Json(new { errors = errors.ToDictionary() }, HostingJson.Options, statusCode: StatusCodes.Status400BadRequest);

    public static IResult Json<T>(T value, int status = StatusCodes.Status200OK) => Results.Json(value, HostingJson.Options, statusCode: status);

    /// <summary>The answer for a refused request.</summary>
    public static IResult From(ApiException e)
    {
        if (e.Field is not null)
        {
            var errors = new FieldErrors();
            errors.Add(e.Field, e.Message);
            return FieldErrors(errors);
        }

        return Error(e.Status, e.Message);
    }
}
