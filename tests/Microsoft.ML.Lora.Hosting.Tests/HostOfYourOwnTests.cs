using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>The service inside an application of its user's: its limits cover its own routes and leave the application's alone.</summary>
public sealed class HostOfYourOwnTests
{
    [Fact]
    public async Task TheBodyLimitCoversTheServiceRoutesAndNotTheHostsOwn()
    {
        string data = Path.Combine(Path.GetTempPath(), "lora-own-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        try
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Services.AddLoraTraining(o =>
            {
                o.DataDirectory = data;
                o.MaxRequestBodyBytes = 4096;
            });
            await using var app = builder.Build();
            app.MapPost("/upload", async (HttpRequest request) =>
            {
                using var copy = new MemoryStream();
                await request.Body.CopyToAsync(copy);
                return copy.Length;
            });
            app.MapLoraTraining();
            await app.StartAsync();
            using var client = new HttpClient { BaseAddress = new Uri(app.Addresses().Single()), Timeout = TimeSpan.FromSeconds(60) };

            string big = new('x', 100_000);
            using (var upload = await client.PostAsync("/upload", new StringContent(big, Encoding.UTF8, "text/plain")))
            {
                Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
                Assert.Equal("100000", await upload.Content.ReadAsStringAsync());
            }

            using (var submit = await client.PostAsync("/jobs", new StringContent($$"""{"model":"tiny","pad":"{{big}}"}""", Encoding.UTF8, "application/json")))
            {
                Assert.Equal(HttpStatusCode.RequestEntityTooLarge, submit.StatusCode);
            }

            await app.StopAsync();
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
