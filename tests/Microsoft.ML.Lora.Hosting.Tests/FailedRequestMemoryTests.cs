using System.Net;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>Runs alone: it reads the process-wide count of live native tensor bytes, which parallel tests would move.</summary>
[CollectionDefinition(nameof(NativeMemoryCollection), DisableParallelization = true)]
public sealed class NativeMemoryCollection;

/// <summary>Requests that fail leave no native memory behind (native tensors have no finalizer).</summary>
[Collection(nameof(NativeMemoryCollection))]
public sealed class FailedRequestMemoryTests
{
    [Fact]
    public async Task AHundredGenerateRequestsWithABrokenTokenizerLeaveNativeMemoryWhereItWas()
    {
        await using var host = await ServiceHost.StartAsync();
        string broken = Path.Combine(host.DataDirectory, "models", "broken-tokenizer");
        Directory.CreateDirectory(broken);
        foreach (string file in Directory.GetFiles(host.ModelDirectory))
        {
            File.Copy(file, Path.Combine(broken, Path.GetFileName(file)));
        }

        File.WriteAllText(Path.Combine(broken, "tokenizer.json"), "{\"model\": ");
        long before = NativePool.LiveBytes;
        for (int i = 0; i < 100; i++)
        {
            using var response = await host.PostJsonAsync("/generate", new { model = "broken-tokenizer", prompt = "ab", maxNewTokens = 2 });
            Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.InternalServerError, $"{(int)response.StatusCode}");
            string text = await response.Content.ReadAsStringAsync();
            Assert.Contains("tokenizer.json", text, StringComparison.Ordinal);
        }

        Assert.Equal(before, NativePool.LiveBytes);
    }
}
