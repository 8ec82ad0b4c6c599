using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>
/// Runs before every endpoint of the service: caps the request body at
/// <see cref="LoraTrainingOptions.MaxRequestBodyBytes"/> (a larger one gets 413 when read), and, when a
/// token is configured, requires it as <c>Authorization: Bearer &lt;token&gt;</c> or as the query parameter
/// <c>access_token</c> (browsers cannot set headers on page loads or EventSource); otherwise 401.
/// </summary>
internal sealed class TokenAuthFilter(IOptions<LoraTrainingOptions> options) : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var settings = options.Value;
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = settings.MaxRequestBodyBytes;
        }

        if (!string.IsNullOrEmpty(settings.Token) && !Authorized(http.Request, settings.Token))
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return ValueTask.FromResult<object?>(ApiResults.Error(StatusCodes.Status401Unauthorized, "missing or wrong token: send 'Authorization: Bearer <token>' or '?access_token=<token>'"));
        }

        return next(context);
    }

    private static bool Authorized(HttpRequest request, string token)
    {
        string? presented = null;
        string header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented = header["Bearer ".Length..].Trim();
        }
        else if (request.Query.TryGetValue("access_token", out var query))
        {
            presented = query.ToString();
        }

        return presented is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(token));
    }
}
