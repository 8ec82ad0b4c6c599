using Microsoft.Extensions.Configuration;
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
    /// jobs (and resumes interrupted ones on start), generation over trained adapters, ONNX export and a
    /// health check. The request body limit applies to the service's own routes only (the host's other
    /// endpoints keep theirs). Map its HTTP API with
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

        options.ValidateOnStart();
        services.AddSingleton<IValidateOptions<LoraTrainingOptions>, OptionsValidator>();
        services.AddSingleton<JobEventHub>();
        services.AddSingleton<JobStore>();
        services.AddSingleton<TrainingJobExecutor>();
        services.AddSingleton<TrainingJobRunner>();
        services.AddHostedService(sp => sp.GetRequiredService<TrainingJobRunner>());
        services.AddSingleton<AdapterGenerator>();
        services.AddSingleton<JobOnnxExporter>();
        services.AddSingleton<Http.TokenAuthFilter>();
        services.AddHealthChecks().AddCheck<TrainingHealthCheck>("training");
        return services;
    }

    /// <summary>
    /// Registers the training service with its options bound from <paramref name="configuration"/> (e.g. the
    /// <c>LoraTraining</c> section of appsettings.json: <c>DataDirectory</c>, <c>Token</c>, <c>MaxConcurrentJobs</c>, …),
    /// then <paramref name="configure"/> applied on top.
    /// </summary>
    public static IServiceCollection AddLoraTraining(this IServiceCollection services, IConfiguration configuration, Action<LoraTrainingOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<LoraTrainingOptions>().Bind(configuration);
        return services.AddLoraTraining(configure);
    }

    private sealed class OptionsValidator : IValidateOptions<LoraTrainingOptions>
    {
        public ValidateOptionsResult Validate(string? name, LoraTrainingOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (ArgumentException e)
            {
                return ValidateOptionsResult.Fail(e.Message.Split(" (Parameter", 2)[0]);
            }
        }
    }
}
