using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>Options: bound from configuration, validated with the setting named, roots defaulting under the data directory.</summary>
public sealed class OptionsTests
{
    [Fact]
    public void OptionsBindFromConfigurationAndTheDelegateAppliesOnTop()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["DataDirectory"] = "/srv/lora",
            ["MaxConcurrentJobs"] = "3",
            ["Token"] = "from-config",
        }).Build();
        using var provider = new ServiceCollection().AddLogging().AddLoraTraining(configuration, o => o.Token = "from-code").BuildServiceProvider();
        var options = provider.GetRequiredService<IOptions<LoraTrainingOptions>>().Value;
        Assert.Equal(3, options.MaxConcurrentJobs);
        Assert.Equal("from-code", options.Token);
        Assert.Equal("/srv/lora/models", options.ResolvedModelRoot);
        Assert.Equal("/srv/lora/datasets", options.ResolvedDatasetRoot);
        Assert.Equal("/srv/lora/outputs", options.ResolvedOutputRoot);
    }

    [Fact]
    public void InvalidOptionsFailNamingTheSetting()
    {
        using var provider = new ServiceCollection().AddLogging().AddLoraTraining(o => o.MaxConcurrentJobs = 0).BuildServiceProvider();
        var e = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<LoraTrainingOptions>>().Value);
        Assert.Contains("MaxConcurrentJobs = 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASecondServiceOnTheSameDataDirectoryIsRefused()
    {
        await using var host = await ServiceHost.StartAsync();
        var second = LoraTrainingServer.Create(o => o.DataDirectory = host.DataDirectory, "http://127.0.0.1:0");
        await using (second)
        {
            var e = await Assert.ThrowsAnyAsync<Exception>(() => second.StartAsync());
            Assert.Contains("in use by another training service", e.ToString(), StringComparison.Ordinal);
        }

        // The first one is unaffected.
        using var health = await host.Client.GetAsync("/health");
        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
    }
}
