using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Http;

namespace Microsoft.ML.Lora.Hosting;

/// <summary>A ready web host running only the training service (what <c>lora serve</c> runs).</summary>
public static class LoraTrainingServer
{
    /// <summary>The default address: loopback only, so nothing outside this machine reaches an unauthenticated service.</summary>
    public const string DefaultUrls = "http://127.0.0.1:5117";

    /// <summary>
    /// Builds a web application with the service registered and mapped, listening on <paramref name="urls"/>
    /// (';'-separated), or when null on the <see cref="LoraTrainingOptions.Urls"/> that <paramref name="configure"/> sets.
    /// </summary>
    public static WebApplication Create(Action<LoraTrainingOptions> configure, string? urls = null, string[]? args = null)
    {
        ArgumentNullException.ThrowIfNull(configure);
        if (urls is null)
        {
            var probe = new LoraTrainingOptions();
            configure(probe);
            urls = probe.Urls;
        }

        var builder = WebApplication.CreateSlimBuilder(args ?? []);
        builder.WebHost.UseUrls(urls);

        // The service's own log lines (jobs started, resumed, checkpointed, failed) stay; per-request lines do not.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddLoraTraining(configure);

        // The host serves the API alone, so Kestrel itself may refuse larger bodies too.
        builder.Services.AddSingleton<IConfigureOptions<KestrelServerOptions>, KestrelLimits>();
        var app = builder.Build();

        // This host serves nothing else: an unknown route or method goes through the same token check as the
        // API (401 before 404), so an unauthenticated client learns nothing about the routes either.
        app.MapLoraTraining().MapFallback("{**path}", (HttpContext context) =>
            ApiResults.Error(StatusCodes.Status404NotFound, $"no route {context.Request.Method} {context.Request.Path}"));
        return app;
    }

    private sealed class KestrelLimits(IOptions<LoraTrainingOptions> options) : IConfigureOptions<KestrelServerOptions>
    {
        public void Configure(KestrelServerOptions kestrel) => kestrel.Limits.MaxRequestBodySize = options.Value.MaxRequestBodyBytes;
    }

    /// <summary>The addresses the started server listens on (with the real port when 0 was asked for).</summary>
    public static IReadOnlyList<string> Addresses(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];
    }
}
