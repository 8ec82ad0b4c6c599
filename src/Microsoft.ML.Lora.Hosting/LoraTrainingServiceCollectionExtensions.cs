using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Exports;
using Microsoft.ML.Lora.Hosting.Generation;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting;

/// <summary>Registration of the hosted training service.</summary>
public static class LoraTrainingServiceCollectionExtensions
{
    /// <summary>
    /// Registers the training service: the SQLite job store, the background runner that trains queued
    /// jobs (and resumes interrupted ones on start), generation over trained adapters, ONNX export, a
    /// health check, and Kestrel's request body limit. Map its HTTP API with
    /// <see cref="LoraTrainingEndpointRouteBuilderExtensions.MapLoraTraining"/>.
    /// </summary>
    /// <param name="services">The host's services.</param>
    /// <param name="configure">Sets the options (data directory, roots, token, concurrency, limits).</param>
    public static IServiceCollection AddLoraTraining(this IServiceCollection services, Action<LoraTrainingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<LoraTrainingOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.Validate(o =>
        {
            o.Validate();
            return true;
        });
        services.AddSingleton<JobEventHub>();
        services.AddSingleton<JobStore>();
        services.AddSingleton<TrainingJobExecutor>();
        services.AddSingleton<TrainingJobRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingJobRunner>());
        services.AddSingleton<AdapterGenerator>();
        services.AddSingleton<JobOnnxExporter>();
        services.AddSingleton<Http.TokenAuthFilter>();
        services.AddHealthChecks().AddCheck<TrainingHealthCheck>("training");
        services.AddSingleton<IConfigureOptions<KestrelServerOptions>, KestrelLimits>();
        return services;
    }

    private sealed class KestrelLimits(IOptions<LoraTrainingOptions> options) : IConfigureOptions<KestrelServerOptions>
    {
        public void Configure(KestrelServerOptions kestrel) => kestrel.Limits.MaxRequestBodySize = options.Value.MaxRequestBodyBytes;
    }
}
