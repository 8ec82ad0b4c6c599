using Microsoft.AspNetCore.Http;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>The dashboard: <c>Dashboard/index.html</c>, embedded in this assembly, served at <c>/</c> and <c>/dashboard</c>.</summary>
internal static class DashboardPage
{
    private const string ResourceName = "Microsoft.ML.Lora.Hosting.Dashboard.index.html";
    private static readonly Lazy<byte[]> Html = new(Load);

    public static IResult Serve(HttpContext context)
    {
        context.Response.Headers.CacheControl = "no-cache";

        // No other site may frame the dashboard (clickjacking its cancel buttons).
        context.Response.Headers.XFrameOptions = "DENY";
        context.Response.Headers.ContentSecurityPolicy = "frame-ancestors 'none'";
        context.Response.Headers.XContentTypeOptions = "nosniff";
        return Results.Bytes(Html.Value, "text/html; charset=utf-8");
    }

    private static byte[] Load()
    {
        using var stream = typeof(DashboardPage).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"embedded resource '{ResourceName}' is missing from {typeof(DashboardPage).Assembly.GetName().Name}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
