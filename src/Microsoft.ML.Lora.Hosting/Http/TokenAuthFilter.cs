using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>
/// Runs before every endpoint of the service: caps the request body at
/// <see cref="LoraTrainingOptions.MaxRequestBodyBytes"/> (a larger one gets 413 when read), then admits the request.
/// With a token configured it must come as <c>Authorization: Bearer &lt;token&gt;</c>, or, on GET only (page loads,
/// EventSource and download links cannot set headers), as the query parameter <c>access_token</c>; otherwise 401.
/// Without a token the service trusts whoever can reach it, so it answers only requests addressed to a loopback name
/// (a web page cannot rebind its own host name to 127.0.0.1 and read the API) and refuses requests a browser marks as
/// coming from another site (a page cannot submit or cancel jobs behind the user's back); both 403.
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

        return Refusal(http.Request, settings.Token) is { } refused ? ValueTask.FromResult<object?>(refused) : next(context);
    }

    /// <summary>The answer that refuses <paramref name="request"/>, or null when it may go on.</summary>
    public static IResult? Refusal(HttpRequest request, string? token)
    {
        if (!string.IsNullOrEmpty(token))
        {
            if (Authorized(request, token))
            {
                return null;
            }

            request.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
            return ApiResults.Error(StatusCodes.Status401Unauthorized, "missing or wrong token: send 'Authorization: Bearer <token>' (or, on GET, '?access_token=<token>')");
        }

        if (!IsLoopbackName(request.Host.Host))
        {
            return ApiResults.Error(StatusCodes.Status403Forbidden, $"no token is configured, so only requests addressed to localhost, 127.0.0.1 or [::1] are served (Host '{request.Host}'); configure a token to serve other names");
        }

        if (CrossSite(request) is string why)
        {
            return ApiResults.Error(StatusCodes.Status403Forbidden, $"request from another site refused ({why}); no token is configured, so only this service's own pages and non-browser clients may call it");
        }

        return null;
    }

    private static bool Authorized(HttpRequest request, string token)
    {
        string? presented = null;
        string header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            presented = header["Bearer ".Length..].Trim();
        }
        else if ((HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && request.Query.TryGetValue("access_token", out var query))
        {
            presented = query.ToString();
        }

        // Hashes of equal length compared in constant time: neither the content nor the length of the token leaks through timing.
        return presented is not null
            && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), SHA256.HashData(Encoding.UTF8.GetBytes(token)));
    }

    private static bool IsLoopbackName(string host)
    {
        string name = host.Trim('[', ']');
        return name.Equals("localhost", StringComparison.OrdinalIgnoreCase) || (IPAddress.TryParse(name, out var address) && IPAddress.IsLoopback(address));
    }

    // Browsers send Origin on cross-origin requests and on every POST, and Sec-Fetch-Site on every request; other
    // clients send neither. A top-level GET navigation from another site (a link to the dashboard) is allowed: it reads nothing back.
    private static string? CrossSite(HttpRequest request)
    {
        string? origin = request.Headers.Origin.FirstOrDefault();
        if (!string.IsNullOrEmpty(origin)
            && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri)
                && uri.Scheme.Equals(request.Scheme, StringComparison.OrdinalIgnoreCase)
                && uri.Authority.Equals(request.Host.Value, StringComparison.OrdinalIgnoreCase)))
        {
            return $"Origin '{origin}'";
        }

        string? site = request.Headers["Sec-Fetch-Site"].FirstOrDefault();
        bool navigation = HttpMethods.IsGet(request.Method) && request.Headers["Sec-Fetch-Mode"].FirstOrDefault() == "navigate";
        if (site is "cross-site" or "same-site" && !navigation)
        {
            return $"Sec-Fetch-Site '{site}'";
        }

        return null;
    }
}
