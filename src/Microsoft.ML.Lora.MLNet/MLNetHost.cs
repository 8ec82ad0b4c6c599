using System.Reflection;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What a LoRA step takes from its <c>MLContext</c>: a seed, a log channel (messages reach
/// <c>MLContext.Log</c>), ML.NET's cancellation and its device settings. ML.NET gives components outside
/// it no public way to reach these from a catalog: the environment behind a catalog
/// (<c>IInternalCatalog.Environment</c>), its cancellation flag (<c>ICancelable.IsCanceled</c>, what
/// <c>MLContext.CancelExecution</c> sets; that method is internal too) and its seed and device settings
/// (<c>IHostEnvironmentInternal</c>) are internal interfaces. They are read here by reflection, each by
/// its name, with a clear error if an ML.NET version renames the one that is required.
/// </summary>
internal sealed class MLNetHost : IDisposable
{
    private const string InternalCatalog = "Microsoft.ML.Data.IInternalCatalog";
    private const string Cancelable = "Microsoft.ML.Runtime.ICancelable";
    private const string EnvironmentInternal = "Microsoft.ML.Runtime.IHostEnvironmentInternal";

    private readonly IHostEnvironment environment;
    private readonly IHost host;

    public MLNetHost(IHostEnvironment environment, string name)
    {
        this.environment = environment;
        host = environment.Register(name);
        Channel = host.Start(name);
    }

    /// <summary>Messages of this step; ML.NET forwards them to <c>MLContext.Log</c>.</summary>
    public IChannel Channel { get; }

    /// <summary>True once ML.NET cancelled the environment (or this step's host).</summary>
    public bool IsCanceled => IsCanceledFlag(environment) || IsCanceledFlag(host);

    /// <summary>
    /// A seed from the context's random stream (ML.NET's <c>IHost.Rand</c>): the same for the same
    /// <c>MLContext(seed)</c> and the same pipeline, random without a seed, as ML.NET's own trainers.
    /// </summary>
    public int NextSeed() => host.Rand.Next();

    /// <summary><c>MLContext.GpuDeviceId</c>, or null.</summary>
    public int? GpuDeviceId => InternalValue(environment, "GpuDeviceId") as int?;

    /// <summary><c>MLContext.FallbackToCpu</c> (false when unreadable).</summary>
    public bool FallbackToCpu => InternalValue(environment, "FallbackToCpu") as bool? ?? false;

    /// <summary>The environment behind an ML.NET catalog (a trainers or transforms catalog of an MLContext).</summary>
    /// <exception cref="NotSupportedException">This ML.NET version has no readable catalog environment.</exception>
    public static IHostEnvironment FromCatalog(object catalog)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var property = FindInterface(catalog.GetType(), InternalCatalog)?.GetProperty("Environment");
        return property?.GetValue(catalog) as IHostEnvironment ?? throw new NotSupportedException(
            $"cannot read the MLContext behind {catalog.GetType().Name}: this ML.NET version ({typeof(IHostEnvironment).Assembly.GetName().Version}) has no {InternalCatalog}.Environment");
    }

    /// <summary>The environment of <paramref name="mlContext"/> (the one its catalogs share).</summary>
    public static IHostEnvironment FromContext(MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return FromCatalog(mlContext.Transforms);
    }

    /// <summary>Throws <see cref="OperationCanceledException"/> when ML.NET or <paramref name="token"/> cancelled.</summary>
    public void ThrowIfCanceled(CancellationToken token)
    {
        token.ThrowIfCancellationRequested();
        if (IsCanceled)
        {
            throw new OperationCanceledException("the MLContext's execution was cancelled");
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Channel.Dispose();
    }

    private static bool IsCanceledFlag(object target) =>
        FindInterface(target.GetType(), Cancelable)?.GetProperty("IsCanceled")?.GetValue(target) is true;

    private static object? InternalValue(object target, string name) =>
        FindInterface(target.GetType(), EnvironmentInternal)?.GetProperty(name)?.GetValue(target);

    private static Type? FindInterface(Type type, string fullName) =>
        type.GetInterfaces().FirstOrDefault(i => i.FullName == fullName);
}

/// <summary>One-argument log calls on an ML.NET channel (ML.NET's own convenience overloads are internal).</summary>
internal static class ChannelLog
{
    // Unknown sensitivity, as ML.NET's convenience overloads mark messages: they may name columns and paths.
    public static void Info(this IChannel channel, string message) => channel.Info(MessageSensitivity.Unknown, message);

    public static void Warning(this IChannel channel, string message) => channel.Warning(MessageSensitivity.Unknown, message);

    public static void Trace(this IChannel channel, string message) => channel.Trace(MessageSensitivity.Unknown, message);
}
