using System.Net;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>Bad bodies (400 naming the field), path escapes (403), tokens (401) and body size (413).</summary>
public sealed class RequestGuardTests
{
    public static TheoryData<string, string> BadBodies => new()
    {
        { """{"dataset":"a.jsonl","output":"o"}""", "model" },
        { """{"model":"tiny","output":"o"}""", "dataset" },
        { """{"model":"tiny","dataset":"a.jsonl"}""", "output" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":{"learningRate":0}}""", "training.learningRate" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":{"batchSize":0}}""", "training.batchSize" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":{"schedule":"sawtooth"}}""", "training.schedule" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"rank":0}}""", "lora.rank" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"dropout":1.5}}""", "lora.dropout" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"quantize":"int3"}}""", "lora.quantize" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"rank":"eight"}}""", "lora.rank" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","data":{"format":"parquet"}}""", "data.format" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","data":{"chatTemplate":"nope"}}""", "data.chatTemplate" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","trainig":{}}""", "trainig" },
        { """{"model":"tiny","dataset":"missing.jsonl","output":"o"}""", "dataset" },
        { """{"model":"datasets-are-not-models","dataset":"a.jsonl","output":"o"}""", "model" },
        { """{"model":"tiny","dataset":"a.jsonl",""", "$" },
        { """[1, 2]""", "$" },
        // Hostile values: numbers past their type, non-JSON NaN, wrong shapes, nesting deeper than the parser's limit.
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"rank":1e400}}""", "lora.rank" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"rank":99999999999}}""", "lora.rank" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"alpha":1e400}}""", "lora.alpha" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"targets":"q_proj"}}""", "lora.targets" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","lora":{"targets":[null]}}""", "lora.targets" },
        { """{"model":5,"dataset":"a.jsonl","output":"o"}""", "model" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":[]}""", "training" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":{"learningRate":"NaN"}}""", "training.learningRate" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":{"learningRate":NaN}}""", "$" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"o","training":{"seed":1.5}}""", "training.seed" },
        { "{\"model\":\"tiny\",\"dataset\":\"a.jsonl\",\"output\":\"o\",\"lora\":{\"targets\":" + new string('[', 10_000) + new string(']', 10_000) + "}}", "$" },
        { """{"model":"tiny","dataset":".","output":"o"}""", "dataset" },
        { """{"model":"tiny","dataset":"a.jsonl","output":"./"}""", "output" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task BadBodiesAreRefusedNamingTheField(string body, string field)
    {
        await using var host = await ServiceHost.StartAsync();
        using var response = await host.Client.PostAsync("/jobs", new StringContent(body, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {text}");
        using var doc = JsonDocument.Parse(text);
        var errors = doc.RootElement.GetProperty("errors");
        Assert.True(errors.TryGetProperty(field, out var messages), $"no error for '{field}' in {text}");
        Assert.True(messages.GetArrayLength() > 0 && messages[0].GetString()!.Length > 0, text);
        Assert.Empty(JsonDocument.Parse(await host.Client.GetStringAsync("/jobs")).RootElement.EnumerateArray());
    }

    [Fact]
    public async Task AnOutputInUseOrAlreadyWrittenIsRefused()
    {
        await using var host = await ServiceHost.StartAsync();
        Directory.CreateDirectory(Path.Combine(host.OutputRoot, "taken"));
        File.WriteAllText(Path.Combine(host.OutputRoot, "taken", "adapter_model.safetensors"), "x");
        using var taken = await host.PostJsonAsync("/jobs", new { model = "tiny", dataset = "a.jsonl", output = "taken" });
        Assert.Equal(HttpStatusCode.BadRequest, taken.StatusCode);
        Assert.Contains("\"output\"", await taken.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Ten submissions racing for one output folder: exactly one wins.
        var racing = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => host.PostJsonAsync("/jobs", new { model = "tiny", dataset = "a.jsonl", output = "twice", training = new { maxSteps = 1_000_000 } })));
        Assert.Single(racing, r => r.StatusCode == HttpStatusCode.Created);
        Assert.All(racing.Where(r => r.StatusCode != HttpStatusCode.Created), r => Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode));
        var loser = racing.First(r => r.StatusCode == HttpStatusCode.BadRequest);
        Assert.Contains("has not finished", await loser.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        foreach (var r in racing)
        {
            r.Dispose();
        }
    }

    [Fact]
    public async Task PathsThatLeaveTheirRootAreForbidden()
    {
        await using var host = await ServiceHost.StartAsync();
        string outside = Path.Combine(host.DataDirectory, "outside");
        Directory.CreateDirectory(outside);
        ServiceHost.WriteText(Path.Combine(outside, "secret.jsonl"), ["not yours"]);
        File.CreateSymbolicLink(Path.Combine(host.DatasetRoot, "link.jsonl"), Path.Combine(outside, "secret.jsonl"));
        Directory.CreateSymbolicLink(Path.Combine(host.DatasetRoot, "linkdir"), outside);
        Directory.CreateDirectory(host.OutputRoot);
        Directory.CreateSymbolicLink(Path.Combine(host.OutputRoot, "escape"), outside);
        File.CreateSymbolicLink(Path.Combine(host.DatasetRoot, "loop"), Path.Combine(host.DatasetRoot, "loop"));

        (object Body, string Field)[] cases =
        [
            (new { model = "../models/tiny", dataset = "a.jsonl", output = "o" }, "model"),
            (new { model = "tiny", dataset = "../datasets/a.jsonl", output = "o" }, "dataset"),
            (new { model = "tiny", dataset = Path.Combine(outside, "secret.jsonl"), output = "o" }, "dataset"),
            (new { model = "tiny", dataset = "/etc/passwd", output = "o" }, "dataset"),
            (new { model = Path.Combine(host.DatasetRoot), dataset = "a.jsonl", output = "o" }, "model"),
            (new { model = "tiny", dataset = "link.jsonl", output = "o" }, "dataset"),
            (new { model = "tiny", dataset = "linkdir/secret.jsonl", output = "o" }, "dataset"),
            (new { model = "tiny", dataset = "a.jsonl", output = "../../evil" }, "output"),
            (new { model = "tiny", dataset = "a.jsonl", output = "escape/adapter" }, "output"),
            (new { model = "tiny", dataset = "a.jsonl", output = "/tmp/evil" }, "output"),
            (new { model = "tiny", dataset = "loop/a.jsonl", output = "o" }, "dataset"),
        ];
        foreach (var (body, field) in cases)
        {
            using var response = await host.PostJsonAsync("/jobs", body);
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{JsonSerializer.Serialize(body)} → {(int)response.StatusCode}: {text}");
            using var doc = JsonDocument.Parse(text);
            Assert.Equal(field, doc.RootElement.GetProperty("field").GetString());
            Assert.Contains(field, doc.RootElement.GetProperty("error").GetString()!, StringComparison.Ordinal);
        }

        // An absolute path inside its root is fine.
        await host.SubmitAsync(new { model = host.ModelDirectory, dataset = Path.Combine(host.DatasetRoot, "a.jsonl"), output = "inside", training = new { maxSteps = 1 } });
        Assert.Equal(["secret.jsonl"], Directory.GetFileSystemEntries(outside).Select(Path.GetFileName));
    }

    [Fact]
    public async Task ADatasetSwappedForALinkWhileQueuedIsNotRead()
    {
        await using var host = await ServiceHost.StartAsync();
        string blocker = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "blocker", training = new { maxSteps = 1_000_000 } });
        string queued = await host.SubmitAsync(new { model = "tiny", dataset = "b.jsonl", output = "swapped", training = new { maxSteps = 1 } });
        await host.WaitForAsync(blocker, j => j.GetProperty("step").GetInt32() >= 1);

        // Accepted while b.jsonl was a plain file; replaced by a link to a file outside the root before it runs.
        string outside = Path.Combine(host.DataDirectory, "outside.jsonl");
        ServiceHost.WriteText(outside, Enumerable.Range(0, 8).Select(i => $"private {i} private"));
        File.Delete(Path.Combine(host.DatasetRoot, "b.jsonl"));
        File.CreateSymbolicLink(Path.Combine(host.DatasetRoot, "b.jsonl"), outside);
        using (var cancel = await host.Client.PostAsync($"/jobs/{blocker}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        var job = await host.WaitForTerminalAsync(queued);
        Assert.Equal("failed", job.GetProperty("state").GetString());
        Assert.Contains("outside the configured root", job.GetProperty("error").GetString()!, StringComparison.Ordinal);
        Assert.Equal(0, job.GetProperty("step").GetInt32());
        Assert.False(Directory.Exists(Path.Combine(host.OutputRoot, "swapped")));
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/dashboard")]
    public async Task TheDashboardMayNotBeFramedByAnotherSite(string path)
    {
        await using var host = await ServiceHost.StartAsync();
        using var response = await host.Client.GetAsync(path);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal("frame-ancestors 'none'", response.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task AnOutputSwappedForALinkWhileQueuedIsNotWritten()
    {
        await using var host = await ServiceHost.StartAsync();
        string blocker = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "blocker", training = new { maxSteps = 1_000_000 } });
        string queued = await host.SubmitAsync(new { model = "tiny", dataset = "b.jsonl", output = "target", training = new { maxSteps = 1 } });
        await host.WaitForAsync(blocker, j => j.GetProperty("step").GetInt32() >= 1);

        // Accepted while outputs/target did not exist; a link to a folder outside the root appears before it runs.
        string outside = Path.Combine(host.DataDirectory, "elsewhere");
        Directory.CreateDirectory(outside);
        Directory.CreateDirectory(host.OutputRoot);
        Directory.CreateSymbolicLink(Path.Combine(host.OutputRoot, "target"), outside);
        using (var cancel = await host.Client.PostAsync($"/jobs/{blocker}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        var job = await host.WaitForTerminalAsync(queued);
        Assert.Equal("failed", job.GetProperty("state").GetString());
        Assert.Contains("output", job.GetProperty("error").GetString()!, StringComparison.Ordinal);
        Assert.Contains("outside the configured root", job.GetProperty("error").GetString()!, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
    }

    [Fact]
    public async Task EveryEndpointRequiresTheTokenWhenOneIsSet()
    {
        await using var host = await ServiceHost.StartAsync(o => o.Token = "s3cret");
        string[] gets = ["/", "/dashboard", "/health", "/jobs", "/jobs/x", "/jobs/x/events", "/jobs/x/adapter", "/jobs/x/onnx"];
        string[] posts = ["/jobs", "/jobs/x/cancel", "/jobs/x/export-onnx", "/generate"];
        foreach (string token in new[] { "", "wrong", "s3cret-but-longer" })
        {
            host.UseToken(token.Length == 0 ? null : token);
            foreach (string path in gets)
            {
                using var response = await host.Client.GetAsync(path);
                await AssertUnauthorized(response, "GET " + path);
            }

            foreach (string path in posts)
            {
                using var response = await host.Client.PostAsync(path, new StringContent("{}", Encoding.UTF8, "application/json"));
                await AssertUnauthorized(response, "POST " + path);
            }

            using var query = await host.Client.GetAsync("/jobs?access_token=" + token);
            await AssertUnauthorized(query, "GET /jobs?access_token=" + token);
        }

        host.UseToken("s3cret");
        using (var ok = await host.Client.GetAsync("/jobs"))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        host.UseToken(null);
        using (var page = await host.Client.GetAsync("/?access_token=s3cret"))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        }

        // The query token is for what a browser cannot send a header with (page, EventSource, download link):
        // GET only, so a token never travels in the URL of a request that changes something.
        string submitBody = """{"model":"tiny","dataset":"a.jsonl","output":"t","training":{"maxSteps":1}}""";
        using (var byQuery = await host.Client.PostAsync("/jobs?access_token=s3cret", new StringContent(submitBody, Encoding.UTF8, "application/json")))
        {
            await AssertUnauthorized(byQuery, "POST /jobs?access_token=s3cret");
        }

        // Routes that do not exist, and methods a route does not take, answer 401 too (not 404/405 to anyone).
        foreach (var (method, path) in new[] { ("GET", "/nope"), ("GET", "/favicon.ico"), ("DELETE", "/jobs"), ("GET", "/jobs/x/cancel"), ("PUT", "/jobs/x/cancel") })
        {
            using var unknown = await host.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
            await AssertUnauthorized(unknown, $"{method} {path}");
        }

        host.UseToken("s3cret");
        using (var unknown = await host.Client.GetAsync("/nope"))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
            Assert.Contains("/nope", JsonDocument.Parse(await unknown.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString()!, StringComparison.Ordinal);
        }

        using (var submit = await host.Client.PostAsync("/jobs", new StringContent(submitBody, Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.Created, submit.StatusCode);
            string id = JsonDocument.Parse(await submit.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
            host.UseToken(null);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events?access_token=s3cret", cts.Token);
            Assert.Equal("succeeded", events[^1].State);
        }
    }

    [Fact]
    public async Task OversizeBodiesGet413()
    {
        await using var host = await ServiceHost.StartAsync(o => o.MaxRequestBodyBytes = 4096);
        string padding = new(' ', 5000);
        using var big = await host.Client.PostAsync("/jobs", new StringContent($$"""{"model":"tiny",{{padding}}"dataset":"a.jsonl","output":"o"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, big.StatusCode);

        // Also without a Content-Length (chunked), where only reading the body finds out.
        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes($$"""{"prompt":"{{new string('a', 5000)}}"}""")));
        chunked.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using var streamed = await host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);

        using var small = await host.PostJsonAsync("/jobs", new { model = "tiny", dataset = "a.jsonl", output = "o", training = new { maxSteps = 1 } });
        Assert.Equal(HttpStatusCode.Created, small.StatusCode);
    }

    private static async Task AssertUnauthorized(HttpResponseMessage response, string what)
    {
        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{what}: {(int)response.StatusCode}");
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("error").GetString()), what);
    }
}
