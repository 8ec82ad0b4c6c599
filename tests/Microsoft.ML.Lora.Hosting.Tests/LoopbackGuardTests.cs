using System.Net;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// Without a token the service trusts whoever reaches it, so it must not be reachable through a browser by
/// another site: a rebound host name (DNS rebinding) and cross-site requests (a page posting to
/// 127.0.0.1 behind the user's back) get 403; the service's own page and non-browser clients are served.
/// </summary>
public sealed class LoopbackGuardTests
{
    private const string Body = """{"model":"tiny","dataset":"a.jsonl","output":"x","training":{"maxSteps":1}}""";

    [Fact]
    public async Task WithoutATokenOnlyLoopbackNamesAndSameSiteRequestsAreServed()
    {
        await using var host = await ServiceHost.StartAsync();
        int port = host.BaseAddress.Port;

        foreach (string name in new[] { "evil.example", "10.0.0.7", "localhost.evil.example" })
        {
            using var rebound = await Send(host, HttpMethod.Get, "/jobs", r => r.Headers.Host = $"{name}:{port}");
            await AssertForbidden(rebound, $"Host {name}", "Host");
        }

        foreach (string name in new[] { "localhost", "127.0.0.1", "[::1]" })
        {
            using var local = await Send(host, HttpMethod.Get, "/jobs", r => r.Headers.Host = $"{name}:{port}");
            Assert.True(local.StatusCode == HttpStatusCode.OK, $"Host {name}: {(int)local.StatusCode}");
        }

        // A page elsewhere posting a "simple" request (text/plain needs no CORS preflight) is refused, and so is
        // any fetch a browser marks cross-site or same-site (another port of localhost is the same site).
        (string Header, string Value)[] foreign =
        [
            ("Origin", "http://evil.example"),
            ("Origin", $"http://127.0.0.1:{port + 1}"),
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-site"),
        ];
        foreach (var (header, value) in foreign)
        {
            using var post = await Send(host, HttpMethod.Post, "/jobs", r =>
            {
                r.Content = new StringContent(Body, Encoding.UTF8, "text/plain");
                r.Headers.Add(header, value);
            });
            await AssertForbidden(post, $"POST with {header}: {value}", header);
            using var cancel = await Send(host, HttpMethod.Post, "/jobs/x/cancel", r => r.Headers.Add(header, value));
            await AssertForbidden(cancel, $"cancel with {header}: {value}", header);
        }

        Assert.Empty(JsonDocument.Parse(await host.Client.GetStringAsync("/jobs")).RootElement.EnumerateArray());

        // A link from another site that opens the dashboard is a navigation: it reads nothing back, so it is served.
        using (var navigation = await Send(host, HttpMethod.Get, "/", r =>
        {
            r.Headers.Add("Sec-Fetch-Site", "cross-site");
            r.Headers.Add("Sec-Fetch-Mode", "navigate");
        }))
        {
            Assert.Equal(HttpStatusCode.OK, navigation.StatusCode);
        }

        // The dashboard's own requests (same origin) are served.
        using (var own = await Send(host, HttpMethod.Post, "/jobs", r =>
        {
            r.Content = new StringContent(Body, Encoding.UTF8, "application/json");
            r.Headers.Add("Origin", $"http://127.0.0.1:{port}");
            r.Headers.Add("Sec-Fetch-Site", "same-origin");
        }))
        {
            Assert.True(own.StatusCode == HttpStatusCode.Created, await own.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task WithATokenOtherHostNamesAreServedToItsHolder()
    {
        await using var host = await ServiceHost.StartAsync(o => o.Token = "t0ken");
        host.UseToken("t0ken");
        using var proxied = await Send(host, HttpMethod.Get, "/jobs", r => r.Headers.Host = "training.example.com");
        Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
    }

    private static async Task<HttpResponseMessage> Send(ServiceHost host, HttpMethod method, string path, Action<HttpRequestMessage> setup)
    {
        using var request = new HttpRequestMessage(method, path);
        setup(request);
        return await host.Client.SendAsync(request);
    }

    private static async Task AssertForbidden(HttpResponseMessage response, string what, string named)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{what}: {(int)response.StatusCode} {text}");
        Assert.Contains(named, JsonDocument.Parse(text).RootElement.GetProperty("error").GetString()!, StringComparison.Ordinal);
    }
}
