using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Parley.Server.Demo;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Widget;

/// <summary>Publishable keys over real HTTP: creating them, what they may open, origins, CORS, and the widget's files.</summary>
public sealed class PublishableKeyTests
{
    private static string DemoPublishableKey(ParleyTestServer server) =>
        server.Services.GetRequiredService<ParleyStartup>().DemoPublishableKey!.Key;

    private static string Origin(ParleyTestServer server) => server.BaseAddress.ToString().TrimEnd('/');

    /// <summary>A browser-like call with a publishable key, an optional thread token and an Origin header.</summary>
    private static async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> CallAsync(
        ParleyTestServer server, HttpMethod method, string path, string key, string? token = null, string? origin = null, object? body = null)
    {
        using var client = server.CreateClient(null);
        var request = new HttpRequestMessage(method, path + (path.Contains('?') ? "&" : "?") + "publishableKey=" + Uri.EscapeDataString(key));
        if (token is not null) request.Headers.Add("X-Thread-Token", token);
        if (origin is not null) request.Headers.Add("Origin", origin);
        if (body is not null) request.Content = JsonContent.Create(body);
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.Content.Headers.ContentType?.MediaType == "text/event-stream" || response.StatusCode == HttpStatusCode.NoContent)
            return (response.StatusCode, default, response);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone(), response);
    }

    private static async Task<(string ThreadId, string Token)> CreateWidgetThreadAsync(ParleyTestServer server, string key, string? origin = null)
    {
        var (status, body, _) = await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", key, origin: origin ?? Origin(server), body: new { metadata = new { source = "test" } });
        Assert.True(status == HttpStatusCode.OK, $"create: {(int)status} {body}");
        return (body.GetProperty("thread").GetProperty("id").GetString()!, body.GetProperty("threadToken").GetString()!);
    }

    private static async Task<JsonElement> CreateKeyAsync(ParleyTestServer server, object request)
    {
        var response = await server.Client.PostAsJsonAsync("/api/v1/publishable-keys", request);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"create key: {(int)response.StatusCode} {body}");
        return body.GetProperty("publishableKey");
    }

    private static void AssertError(HttpStatusCode expected, string code, string messageStart, (HttpStatusCode Status, JsonElement Body, HttpResponseMessage _) actual)
    {
        Assert.Equal(expected, actual.Status);
        Assert.Equal((int)expected, actual.Body.GetProperty("status").GetInt32());
        Assert.Equal(code, actual.Body.GetProperty("code").GetString());
        Assert.False(actual.Body.GetProperty("success").GetBoolean());
        Assert.StartsWith(messageStart, actual.Body.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_site_owner_creates_lists_and_revokes_a_publishable_key_with_the_secret_key()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var created = await server.Client.PostAsJsonAsync("/api/v1/publishable-keys",
            new { agentId = ParleyTestServer.LeadQualifierId, allowedOrigins = new[] { "https://Example.com:443/", "http://localhost:8080", "self", "https://example.com" }, name = "docs site" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var key = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("publishableKey");
        Assert.Equal($"/api/v1/publishable-keys/{key.GetProperty("id").GetString()}", created.Headers.Location!.ToString());
        Assert.StartsWith("pub_", key.GetProperty("key").GetString());
        Assert.Equal(["https://example.com", "http://localhost:8080", "self"], key.GetProperty("allowedOrigins").EnumerateArray().Select(o => o.GetString()));
        Assert.Equal("docs site", key.GetProperty("name").GetString());
        Assert.Equal(JsonValueKind.Null, key.GetProperty("revokedAt").ValueKind);
        Assert.False(key.TryGetProperty("tokenSecret", out _));
        var value = key.GetProperty("key").GetString()!;

        var list = await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/publishable-keys");
        Assert.Contains(list.GetProperty("publishableKeys").EnumerateArray(), k => k.GetProperty("key").GetString() == value);

        var (threadId, token) = await CreateWidgetThreadAsync(server, value, "https://example.com");
        Assert.StartsWith("tt_", token);
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{threadId}", value, token, "https://example.com")).Status);

        var revoked = await server.Client.DeleteAsync($"/api/v1/publishable-keys/{key.GetProperty("id").GetString()}");
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.NotEqual(JsonValueKind.Null, (await revoked.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("publishableKey").GetProperty("revokedAt").ValueKind);
        AssertError(HttpStatusCode.Unauthorized, "UNAUTHORIZED", "Invalid publishable key", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{threadId}", value, token, "https://example.com"));
        AssertError(HttpStatusCode.Unauthorized, "UNAUTHORIZED", "Invalid publishable key", await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", value, origin: "https://example.com", body: new { }));
    }

    [Theory]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10"}""", "allowedOrigins: is required")]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10","allowedOrigins":"https://example.com"}""", "allowedOrigins: must be an array")]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10","allowedOrigins":[]}""", "allowedOrigins: must list at least one")]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10","allowedOrigins":["example.com"]}""", "allowedOrigins[0]: must be an origin")]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10","allowedOrigins":["https://ok.example","https://example.com/shop"]}""", "allowedOrigins[1]: must be an origin")]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10","allowedOrigins":["https://*.example.com"]}""", "allowedOrigins[0]: must be an origin")]
    [InlineData("""{"agentId":"3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10","allowedOrigins":["ftp://example.com"]}""", "allowedOrigins[0]: must be an origin")]
    [InlineData("""{"allowedOrigins":["https://example.com"]}""", "agentId: is required")]
    public async Task A_bad_publishable_key_request_gets_a_400_naming_the_field(string json, string message)
    {
        await using var server = await ParleyTestServer.StartAsync();
        var before = (await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/publishable-keys")).GetProperty("publishableKeys").GetArrayLength();
        var response = await server.Client.PostAsync("/api/v1/publishable-keys", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("BAD_REQUEST", body.GetProperty("code").GetString());
        Assert.StartsWith(message, body.GetProperty("message").GetString());
        Assert.Equal(before, (await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/publishable-keys")).GetProperty("publishableKeys").GetArrayLength());
    }

    [Fact]
    public async Task A_publishable_key_for_another_organizations_agent_is_refused()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var (_, other) = await server.CreateOrganizationAsync("Other");
        var response = await other.PostAsJsonAsync("/api/v1/publishable-keys", new { agentId = ParleyTestServer.LeadQualifierId, allowedOrigins = new[] { "https://example.com" } });
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var list = await other.GetFromJsonAsync<JsonElement>("/api/v1/publishable-keys");
        Assert.Equal(0, list.GetProperty("publishableKeys").GetArrayLength());
        // Nor does the other organization see or revoke the demo key.
        var demoId = server.Services.GetRequiredService<ParleyStartup>().DemoPublishableKey!.Id;
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/api/v1/publishable-keys/{demoId}")).StatusCode);
    }

    [Fact]
    public async Task A_publishable_key_opens_only_the_threads_it_created_and_only_with_their_tokens()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var keyA = DemoPublishableKey(server);
        var keyB = (await CreateKeyAsync(server, new { agentId = ParleyTestServer.LeadQualifierId, allowedOrigins = new[] { "self" } })).GetProperty("key").GetString()!;
        var (a1, tokenA1) = await CreateWidgetThreadAsync(server, keyA);
        var (a2, _) = await CreateWidgetThreadAsync(server, keyA);
        var (b1, tokenB1) = await CreateWidgetThreadAsync(server, keyB);
        var secretThread = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await server.Client.SendAsync(secretThread, "hi");
        var origin = Origin(server);

        var ok = await CallAsync(server, HttpMethod.Post, $"/api/v1/threads/{a1}/messages", keyA, tokenA1, origin, new { message = "hi" });
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{a1}/messages", keyA, tokenA1, origin)).Status);
        // Let both runs finish writing before counting rows.
        foreach (var thread in new[] { a1, secretThread })
        {
            await using var events = await SseStream.OpenAsync(server.Client, thread, events: "all");
            await events.ReadUntilAsync(e => e.EventType == "run.completed");
        }
        var rows = server.CountRows();

        foreach (var path in new[] { "", "/messages" })
        {
            AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", $"threadId: thread {a2} is not accessible", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{a2}{path}", keyA, tokenA1, origin));
            AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", $"threadId: thread {secretThread} is not accessible", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{secretThread}{path}", keyA, tokenA1, origin));
            AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", $"threadId: thread {b1} is not accessible", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{b1}{path}", keyA, tokenB1, origin));
            AssertError(HttpStatusCode.Unauthorized, "UNAUTHORIZED", "Missing thread token", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{a1}{path}", keyA, null, origin));
        }
        AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", "threadId:", await CallAsync(server, HttpMethod.Post, $"/api/v1/threads/{secretThread}/messages", keyA, tokenA1, origin, new { message = "let me in" }));
        AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", "threadId:", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{secretThread}/stream", keyA, tokenA1, origin));
        AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", "threadId:", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{b1}/stream", keyA, tokenB1, origin));
        Assert.Equal(rows, server.CountRows());

        // Its own stream opens with the token.
        var stream = await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{a1}/stream?events=all", keyA, tokenA1, origin);
        Assert.Equal(HttpStatusCode.OK, stream.Status);
        stream.Response.Dispose();
    }

    [Fact]
    public async Task A_foreign_origin_is_refused_with_403_and_nothing_is_written()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var key = DemoPublishableKey(server);
        var (threadId, token) = await CreateWidgetThreadAsync(server, key);
        var rows = server.CountRows();

        foreach (var origin in new[] { "https://evil.example", "http://127.0.0.1:1", "null" })
        {
            var create = await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", key, origin: origin, body: new { });
            AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", $"Origin {origin} is not allowed for this publishable key", create);
            Assert.False(create.Response.Headers.Contains("Access-Control-Allow-Origin"));
            AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", "Origin", await CallAsync(server, HttpMethod.Post, $"/api/v1/threads/{threadId}/messages", key, token, origin, new { message = "hi" }));
            AssertError(HttpStatusCode.Forbidden, "FORBIDDEN", "Origin", await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{threadId}/stream", key, token, origin));
        }
        Assert.Equal(rows, server.CountRows());
    }

    [Fact]
    public async Task Cors_preflights_allow_only_the_keys_origins_and_never_the_secret_key_endpoints()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var key = (await CreateKeyAsync(server, new { agentId = ParleyTestServer.LeadQualifierId, allowedOrigins = new[] { "https://shop.example" } })).GetProperty("key").GetString()!;
        using var client = server.CreateClient(null);

        async Task<HttpResponseMessage> PreflightAsync(string path, string origin)
        {
            var request = new HttpRequestMessage(HttpMethod.Options, path);
            request.Headers.Add("Origin", origin);
            request.Headers.Add("Access-Control-Request-Method", "POST");
            request.Headers.Add("Access-Control-Request-Headers", "content-type,x-thread-token,last-event-id");
            return await client.SendAsync(request);
        }

        var allowed = await PreflightAsync($"/api/v1/threads/web?publishableKey={key}", "https://shop.example");
        Assert.Equal(HttpStatusCode.NoContent, allowed.StatusCode);
        Assert.Equal("https://shop.example", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var headers = string.Join(",", allowed.Headers.GetValues("Access-Control-Allow-Headers")).ToLowerInvariant();
        Assert.Contains("x-thread-token", headers);
        Assert.Contains("last-event-id", headers);
        Assert.False(allowed.Headers.Contains("Access-Control-Allow-Credentials"));

        Assert.False((await PreflightAsync($"/api/v1/threads/web?publishableKey={key}", "https://evil.example")).Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False((await PreflightAsync($"/api/v1/threads/web?publishableKey={key}", Origin(server))).Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False((await PreflightAsync("/api/v1/threads/web", "https://shop.example")).Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False((await PreflightAsync($"/api/v1/threads/web?publishableKey=pub_unknown", "https://shop.example")).Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False((await PreflightAsync($"/api/v1/agents?publishableKey={key}", "https://shop.example")).Headers.Contains("Access-Control-Allow-Origin"));
        Assert.False((await PreflightAsync($"/api/v1/publishable-keys?publishableKey={key}", "https://shop.example")).Headers.Contains("Access-Control-Allow-Origin"));

        // The actual response carries the header for the allowed origin only.
        var (_, _, response) = await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", key, origin: "https://shop.example", body: new { });
        Assert.Equal("https://shop.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Fact]
    public async Task A_publishable_key_cannot_set_variables_pick_another_agent_or_call_secret_key_endpoints()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var key = DemoPublishableKey(server);
        var origin = Origin(server);
        var (threadId, token) = await CreateWidgetThreadAsync(server, key);
        var rows = server.CountRows();

        AssertError(HttpStatusCode.BadRequest, "BAD_REQUEST", "variables: cannot be set with a publishable key",
            await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", key, origin: origin, body: new { variables = new { email = "vip@example.com" } }));
        AssertError(HttpStatusCode.NotFound, "NOT_FOUND", "agentId:",
            await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", key, origin: origin, body: new { agentId = Guid.NewGuid() }));
        var explicitAgent = await CallAsync(server, HttpMethod.Post, "/api/v1/threads/web", key, origin: origin, body: new { agentId = ParleyTestServer.LeadQualifierId });
        Assert.Equal(HttpStatusCode.OK, explicitAgent.Status);
        rows = server.CountRows();

        foreach (var (method, path) in new[]
                 {
                     (HttpMethod.Patch, $"/api/v1/threads/{threadId}/close"),
                     (HttpMethod.Post, $"/api/v1/threads/{threadId}/operator-messages"),
                     (HttpMethod.Post, $"/api/v1/threads/{threadId}/release"),
                     (HttpMethod.Get, "/api/v1/agents"),
                     (HttpMethod.Get, "/api/v1/usage"),
                     (HttpMethod.Get, "/api/v1/publishable-keys"),
                     (HttpMethod.Post, "/api/v1/publishable-keys"),
                 })
            AssertError(HttpStatusCode.Unauthorized, "UNAUTHORIZED", "This endpoint needs the secret API key",
                await CallAsync(server, method, path, key, token, origin, method == HttpMethod.Get ? null : new { message = "x" }));
        Assert.Equal(rows, server.CountRows());
    }

    [Fact]
    public async Task A_publishable_key_is_no_key_in_the_other_dialects_and_a_secret_key_beside_it_is_the_one_that_counts()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var key = DemoPublishableKey(server);
        var origin = Origin(server);
        var (threadId, token) = await CreateWidgetThreadAsync(server, key);

        // Agent-server and chat-stream endpoints take only the secret key: 401 (not 403) in each dialect's own shape.
        var agentServer = await CallAsync(server, HttpMethod.Get, $"/threads/{threadId}", key, token, origin);
        Assert.Equal(HttpStatusCode.Unauthorized, agentServer.Status);
        Assert.StartsWith("This endpoint needs the secret API key in the x-api-key header", agentServer.Body.GetProperty("detail").GetString());
        var chat = await CallAsync(server, HttpMethod.Post, "/chat/stream", key, token, origin, new { message = "hi" });
        Assert.Equal(HttpStatusCode.Unauthorized, chat.Status);
        Assert.Equal("unauthorized", chat.Body.GetProperty("error").GetProperty("code").GetString());
        Assert.StartsWith("This endpoint needs the secret API key in an Authorization: Bearer header", chat.Body.GetProperty("error").GetProperty("message").GetString());

        // On a widget endpoint a secret key sent beside the publishable key decides: a wrong one is refused...
        async Task<(HttpStatusCode Status, JsonElement Body)> WithSecretAsync(string secret, object body)
        {
            using var client = server.CreateClient(secret);
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/threads/web?publishableKey={Uri.EscapeDataString(key)}") { Content = JsonContent.Create(body) };
            request.Headers.Add("Origin", origin);
            using var response = await client.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
        }
        var rows = server.CountRows();
        var wrong = await WithSecretAsync("pk_wrong", new { agentId = ParleyTestServer.LeadQualifierId });
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.Status);
        Assert.Equal("Invalid API key.", wrong.Body.GetProperty("message").GetString());
        Assert.Equal(rows, server.CountRows());
        // ...and a valid one acts with its own rights (setting variables, which the publishable key alone may not).
        var secret = await WithSecretAsync(ParleyTestServer.DemoKey, new { agentId = ParleyTestServer.LeadQualifierId, variables = new { email = "vip@example.com" } });
        Assert.True(secret.Status == HttpStatusCode.OK, $"{(int)secret.Status} {secret.Body}");
        Assert.True(!secret.Body.TryGetProperty("threadToken", out var threadToken) || threadToken.ValueKind == JsonValueKind.Null,
            "a thread created with the secret key has no thread token");
    }

    [Fact]
    public async Task The_widget_script_is_cached_and_revalidated_and_the_start_page_embeds_the_publishable_key_not_the_secret_one()
    {
        await using var server = await ParleyTestServer.StartAsync();
        using var client = server.CreateClient(null);
        var script = await client.GetAsync("/widget.js");
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal("text/javascript", script.Content.Headers.ContentType!.MediaType);
        Assert.Equal(TimeSpan.FromMinutes(5), script.Headers.CacheControl!.MaxAge);
        Assert.True(script.Headers.CacheControl.Public);
        var etag = script.Headers.ETag!;
        var text = await script.Content.ReadAsStringAsync();
        Assert.Contains("textContent", text);
        Assert.DoesNotContain("innerHTML", text);

        var again = new HttpRequestMessage(HttpMethod.Get, "/widget.js");
        again.Headers.IfNoneMatch.Add(etag);
        Assert.Equal(HttpStatusCode.NotModified, (await client.SendAsync(again)).StatusCode);

        var page = await client.GetStringAsync("/");
        Assert.Contains($"data-key=\"{DemoPublishableKey(server)}\"", page);
        Assert.Contains("<script src=\"/widget.js\"", page);
        Assert.DoesNotContain(ParleyTestServer.DemoKey, page);
        Assert.DoesNotContain(ParleyTestServer.DemoKey, text);
    }

    [Fact]
    public async Task Publishable_key_requests_are_rate_limited_apart_from_the_secret_key()
    {
        await using var server = await ParleyTestServer.StartAsync(extraArgs: ["--Parley:RateLimits:RequestsPerMinute=3", "--Parley:RateLimits:Burst=3"]);
        var key = DemoPublishableKey(server);
        var (threadId, token) = await CreateWidgetThreadAsync(server, key);
        for (var i = 0; i < 2; i++)
            Assert.Equal(HttpStatusCode.OK, (await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{threadId}", key, token, Origin(server))).Status);
        var limited = await CallAsync(server, HttpMethod.Get, $"/api/v1/threads/{threadId}", key, token, Origin(server));
        AssertError(HttpStatusCode.TooManyRequests, "TOO_MANY_REQUESTS", "Rate limit exceeded", limited);
        Assert.True(limited.Response.Headers.RetryAfter is not null);
        // The secret key has its own budget.
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync($"/api/v1/threads/{threadId}")).StatusCode);
    }

    [Fact]
    public async Task The_demo_publishable_key_and_its_thread_tokens_survive_a_restart()
    {
        var folder = Directory.CreateTempSubdirectory("parley-test-").FullName;
        try
        {
            string key, threadId, token;
            await using (var first = await ParleyTestServer.StartAsync(folder))
            {
                key = DemoPublishableKey(first);
                (threadId, token) = await CreateWidgetThreadAsync(first, key);
            }
            await using var second = await ParleyTestServer.StartAsync(folder);
            Assert.Equal(key, DemoPublishableKey(second));
            Assert.Equal(HttpStatusCode.OK, (await CallAsync(second, HttpMethod.Get, $"/api/v1/threads/{threadId}", key, token, Origin(second))).Status);

            // A changed origin list replaces the demo key; the old one stops working.
            await second.StopAsync();
            await using var third = await ParleyTestServer.StartAsync(folder, extraArgs: "--Parley:Demo:WidgetOrigins:0=https://www.example.com");
            var replaced = third.Services.GetRequiredService<ParleyStartup>().DemoPublishableKey!;
            Assert.NotEqual(key, replaced.Key);
            Assert.Equal(["self", "https://www.example.com"], replaced.AllowedOrigins);
            Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync(third, HttpMethod.Get, $"/api/v1/threads/{threadId}", key, token, Origin(third))).Status);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
