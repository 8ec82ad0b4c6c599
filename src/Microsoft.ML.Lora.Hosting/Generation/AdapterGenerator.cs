using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Http;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Storage;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Hosting.Generation;

/// <summary>
/// Serves <c>POST /generate</c>: one loaded copy per base model (and quantization), with every adapter
/// asked for so far attached to it under its job id; each request activates its adapter (or disables
/// them all) and generates. Requests on the same base run one at a time, since the active adapter is
/// state of the shared model; different bases run in parallel.
/// </summary>
internal sealed class AdapterGenerator(JobStore store, IOptions<LoraTrainingOptions> options, ILogger<AdapterGenerator> logger) : IDisposable
{
    private const int DefaultMaxNewTokens = 64;
    private readonly Dictionary<(string Model, bool Nf4, bool DoubleQuant), LoadedBase> bases = [];
    private readonly Lock gate = new();

    public async Task<GenerateResponse> GenerateAsync(GenerateRequest request, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (string.IsNullOrEmpty(request.Prompt))
        {
            throw new ApiException(400, "is required", "prompt");
        }

        int maxNew = request.MaxNewTokens ?? DefaultMaxNewTokens;
        if (maxNew < 1 || maxNew > settings.MaxGenerationTokens)
        {
            throw new ApiException(400, $"must be in [1, {settings.MaxGenerationTokens}] (got {maxNew})", "maxNewTokens");
        }

        double temperature = request.Temperature ?? 0;
        if (!double.IsFinite(temperature) || temperature < 0)
        {
            throw new ApiException(400, "must be ≥ 0 (0 = greedy)", "temperature");
        }

        var (key, adapterDir) = Resolve(request, settings);
        var loaded = GetBase(key);
        await loaded.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() => Generate(loaded, request.Adapter, adapterDir, request.Prompt, maxNew, temperature, request.Seed ?? 0, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            loaded.Gate.Release();
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (var b in bases.Values)
            {
                b.Dispose();
            }

            bases.Clear();
        }
    }

    private ((string, bool, bool) Key, string? AdapterDirectory) Resolve(GenerateRequest request, LoraTrainingOptions settings)
    {
        string? requestedModel = request.Model is null ? null : RootedPath.Resolve(settings.ResolvedModelRoot, request.Model, "model");
        if (request.Adapter is null)
        {
            if (requestedModel is null)
            {
                throw new ApiException(400, "is required when no adapter is given", "model");
            }

            RequireModel(requestedModel, request.Model!);
            return ((requestedModel, false, false), null);
        }

        var job = store.Get(request.Adapter) ?? throw new ApiException(404, $"job '{request.Adapter}' not found");
        if (job.State != JobState.Succeeded)
        {
            throw new ApiException(409, $"job '{request.Adapter}' is {job.State.ToWire()}; its adapter exists once it has succeeded");
        }

        var paths = store.GetPaths(job.Id)!;
        if (requestedModel is not null && requestedModel != paths.ModelDirectory)
        {
            throw new ApiException(400, $"job '{job.Id}' trained its adapter on another base model; omit model or name that one", "model");
        }

        // The adapter is applied over the base it trained on: NF4 (and double quantization) as the job asked.
        var lora = job.Request.Deserialize<JobRequest>(HostingJson.Requests)?.Lora;
        bool nf4 = lora?.Quantize == "nf4";
        return ((paths.ModelDirectory, nf4, nf4 && lora!.DoubleQuant == true), paths.OutputDirectory);
    }

    private static void RequireModel(string directory, string requested)
    {
        if (!File.Exists(Path.Combine(directory, "config.json")))
        {
            throw new ApiException(400, $"'{requested}' is not a model folder under the model root (no config.json)", "model");
        }

        if (!File.Exists(Path.Combine(directory, "tokenizer.json")))
        {
            throw new ApiException(400, $"'{requested}' has no tokenizer.json; generation needs the model's tokenizer", "model");
        }
    }

    private LoadedBase GetBase((string Model, bool Nf4, bool DoubleQuant) key)
    {
        lock (gate)
        {
            if (!bases.TryGetValue(key, out var loaded))
            {
                RequireModel(key.Model, key.Model);

                // The tokenizer first (managed memory only); the model's native tensors are disposed on any
                // later failure, so a failing request holds nothing afterwards.
                var tokenizer = Tokenizer.Load(key.Model);
                var model = LlamaForCausalLM.Load(key.Model);
                try
                {
                    if (key.Nf4)
                    {
                        model.QuantizeNf4(key.DoubleQuant);
                    }

                    model.To(options.Value.Backend);
                }
                catch
                {
                    model.Dispose();
                    throw;
                }

                loaded = new LoadedBase(model, tokenizer);
                bases[key] = loaded;
                logger.LogInformation("Generation: loaded base model {Model}{Nf4}", key.Model, key.Nf4 ? " (NF4)" : string.Empty);
            }

            return loaded;
        }
    }

    private GenerateResponse Generate(LoadedBase loaded, string? jobId, string? adapterDir, string prompt, int maxNew, double temperature, int seed, CancellationToken cancellationToken)
    {
        var model = loaded.Model;
        string? adapterName = jobId is null ? null : "job-" + jobId;
        if (adapterName is not null && loaded.Adapters.Add(adapterName))
        {
            try
            {
                model.LoadAdapter(adapterDir!, adapterName);
                logger.LogInformation("Generation: adapter of job {JobId} loaded from {Directory}", jobId, adapterDir);
            }
            catch
            {
                loaded.Adapters.Remove(adapterName);
                throw;
            }
        }

        var tokenizer = loaded.Tokenizer;
        int[] ids = tokenizer.Encode(prompt, addSpecialTokens: true);

        // Attention over a prompt grows with its square: a long one would hold the base (and a core) for
        // minutes, past what the model was built for anyway.
        int positions = model.Config.MaxPositionEmbeddings;
        if (ids.Length + maxNew > positions)
        {
            throw new ApiException(400, $"{ids.Length} prompt tokens + maxNewTokens {maxNew} exceed the model's {positions} positions (max_position_embeddings)", "prompt");
        }

        var generation = new GenerationOptions
        {
            MaxNewTokens = maxNew,
            Temperature = temperature,
            Seed = seed,
            StopTokenIds = tokenizer.EosTokenId is int eos ? [eos] : [],
        };
        List<int> tokens;
        if (adapterName is null)
        {
            using (model.DisableAdapters())
            {
                tokens = Generator.Generate(model, ids, generation, cancellationToken).ToList();
            }
        }
        else
        {
            model.SetActiveAdapter(adapterName);
            tokens = Generator.Generate(model, ids, generation, cancellationToken).ToList();
        }

        string text = tokenizer.Decode(tokens.ToArray(), skipSpecialTokens: true);
        return new GenerateResponse(text, tokens, jobId);
    }

    private sealed class LoadedBase(LlamaForCausalLM model, Tokenizer tokenizer) : IDisposable
    {
        public LlamaForCausalLM Model { get; } = model;

        public Tokenizer Tokenizer { get; } = tokenizer;

        public HashSet<string> Adapters { get; } = new(StringComparer.Ordinal);

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public void Dispose()
        {
            Model.Dispose();
            Gate.Dispose();
        }
    }
}
