using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Tests.Infrastructure;
using static Parley.Tests.Infrastructure.ScriptedOpenAIServer;

namespace Parley.Tests.ChatStream;

/// <summary>The chat-stream dialect: /chat/stream and /chat, Bearer keys, errors, limits and budgets.</summary>
public sealed class ChatStreamTests : ModelRigTests
{

    private async Task<ParleyTestServer> StartAsync(params string[] extra)
    {
        var agents = TestAgents.NewFolder();
        File.Copy(Path.Combine(AppContext.BaseDirectory, "agents", "lead-qualifier.yaml"), Path.Combine(agents, "lead-qualifier.yaml"));
        TestAgents.Write(agents, "orders.yaml", $$$"""
            id: {{{AgentId}}}
            name: Orders
            mode: PROMPT
            model: test
            instructions: Help with orders.
            tools:
              - name: lookup_order
                url: "{{{Webhook.Url}}}"
                secretEnvironmentVariable: {{{Rig.SecretVariable}}}
                parameters: { type: object, properties: { order_id: { type: string } }, required: [order_id] }
            """);
        return await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs: [.. Rig.ModelArgs(), .. extra]);
    }

    private static HttpClient Bearer(ParleyTestServer server, string key = ParleyTestServer.DemoKey)
    {
        var client = server.CreateClient(null);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private static async Task<(HttpResponseMessage Response, List<string> Lines)> PostStreamAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/chat/stream", body);
        var text = await response.Content.ReadAsStringAsync();
        // Comment lines (": ping" heartbeats) are part of SSE; clients skip them, and so does this helper.
        return (response, text.Split('\n').Where(l => l.Length > 0 && !l.StartsWith(':')).ToList());
    }

    [Fact]
    public async Task A_streamed_reply_with_a_tool_call_has_the_exact_event_sequence_and_fields()
    {
        await using var server = await StartAsync();
        Model.Enqueue(new ToolCallReply("lookup_order", ["{\"order_id\":", "\"A-7\"}"]), new TextReply(["Order ", "A-7 shipped."], 30, 4));

        var (response, lines) = await PostStreamAsync(Bearer(server), new { agent_id = AgentId.ToString(), message = "where is A-7?" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.All(lines, l => Assert.StartsWith("data: ", l)); // data lines only: no event:, no id:
        var events = lines.Select(l => JsonDocument.Parse(l[6..]).RootElement).ToList();
        Assert.Equal(["tool_call", "tool_result", "text", "text", "done"], events.Select(e => e.GetProperty("type").GetString()!));
        Assert.Equal("lookup_order", events[0].GetProperty("name").GetString());
        Assert.Equal("A-7", events[0].GetProperty("args").GetProperty("order_id").GetString());
        Assert.Equal(["type", "name", "args"], events[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal("shipped", events[1].GetProperty("result").GetProperty("status").GetString());
        Assert.Equal(["type", "name", "result"], events[1].EnumerateObject().Select(p => p.Name));
        Assert.Equal(["Order ", "A-7 shipped."], events.Skip(2).Take(2).Select(e => e.GetProperty("content").GetString()!));
        Assert.Equal(["type", "content"], events[2].EnumerateObject().Select(p => p.Name));
        var usage = events[4].GetProperty("usage");
        Assert.Equal(20 + 30, usage.GetProperty("input_tokens").GetInt64());
        Assert.Equal(7 + 4, usage.GetProperty("output_tokens").GetInt64());
        Assert.Equal(61, usage.GetProperty("total_tokens").GetInt64());
        var session = events[4].GetProperty("session_id").GetString();
        Assert.Equal(session, response.Headers.GetValues("X-Session-Id").Single());

        // The session is a thread: the web chat dialect sees the same conversation.
        var history = await server.Client.HistoryAsync(session!);
        Assert.Equal(["where is A-7?", "Order A-7 shipped."], history.Select(m => m.GetProperty("messageBody").GetString()!));
    }

    [Fact]
    public async Task Continuing_a_session_gives_the_model_the_history_and_chat_answers_as_json()
    {
        await using var server = await StartAsync();
        var client = Bearer(server);
        Model.Enqueue(new TextReply(["Hi Ada."]), new TextReply(["You are Ada."], 50, 3));
        var (_, first) = await PostStreamAsync(client, new { agent_id = AgentId, message = "I am Ada" });
        var session = JsonDocument.Parse(first[^1][6..]).RootElement.GetProperty("session_id").GetString();

        var response = await client.PostAsJsonAsync("/chat", new { agent_id = AgentId, message = "who am I?", session_id = session });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("You are Ada.", body.GetProperty("response").GetString());
        Assert.Equal(session, body.GetProperty("session_id").GetString());
        Assert.Equal(53, body.GetProperty("usage").GetProperty("total_tokens").GetInt64());
        Assert.Empty(body.GetProperty("tool_calls").EnumerateArray());

        var sent = Model.Requests.ToArray()[1]["messages"]!.AsArray().Select(m => m!["content"]!.ToJsonString()).ToList();
        Assert.Contains(sent, c => c.Contains("I am Ada"));
        Assert.Contains(sent, c => c.Contains("Hi Ada."));
        Assert.Contains(sent, c => c.Contains("who am I?"));
    }

    [Fact]
    public async Task A_flow_agent_answers_with_whole_messages_as_text_events()
    {
        await using var server = await StartAsync();
        var (_, lines) = await PostStreamAsync(Bearer(server), new { agent_id = ParleyTestServer.LeadQualifierId, message = "hi" });
        var events = lines.Select(l => JsonDocument.Parse(l[6..]).RootElement).ToList();
        Assert.Equal(["text", "text", "done"], events.Select(e => e.GetProperty("type").GetString()!));
        Assert.Equal("\n\nWhat's your name?", events[1].GetProperty("content").GetString());
        Assert.Equal(0, events[2].GetProperty("usage").GetProperty("total_tokens").GetInt64());
    }

    public static TheoryData<string, int, string> Errors() => new()
    {
        { "no-key", 401, "unauthorized" },
        { "bad-key", 401, "unauthorized" },
        { "unknown-agent", 404, "not_found" },
        { "non-uuid-agent", 404, "not_found" },
        { "unknown-session", 404, "not_found" },
        { "foreign-session", 404, "not_found" },
        { "missing-message", 400, "bad_request" },
        { "message-not-string", 400, "bad_request" },
        { "bad-json", 400, "bad_request" },
        { "budget-spent", 402, "insufficient_balance" },
    };

    [Theory]
    [MemberData(nameof(Errors))]
    public async Task Every_error_has_the_documented_shape_and_stores_or_charges_nothing(string scenario, int status, string code)
    {
        await using var server = await StartAsync();
        var client = Bearer(server);
        var (foreignOrg, foreign) = await server.CreateOrganizationAsync("Other");
        var foreignThread = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString();
        if (scenario == "budget-spent")
        {
            var organizations = server.Services.GetRequiredService<IOrganizationStore>();
            Model.Enqueue(new TextReply(["spend"], 10, 5));
            await PostStreamAsync(client, new { agent_id = AgentId, message = "use some tokens" });
            await organizations.SetTokenBudgetAsync(Parley.Server.Demo.ParleyStartup.DefaultOrganizationId, 15);
        }
        var before = server.CountRows();
        var requestsBefore = Model.Requests.Count;
        var usageBefore = (await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/usage")).GetProperty("totalTokens").GetInt64();

        HttpClient caller = scenario switch { "no-key" => server.CreateClient(null), "bad-key" => Bearer(server, "pk_nope"), "foreign-session" => foreign, _ => client };
        string body = scenario switch
        {
            "unknown-agent" => JsonSerializer.Serialize(new { agent_id = Guid.NewGuid(), message = "hi" }),
            "non-uuid-agent" => JsonSerializer.Serialize(new { agent_id = "ag_c47e7c97_b2f2", message = "hi" }),
            "unknown-session" => JsonSerializer.Serialize(new { agent_id = AgentId, message = "hi", session_id = Guid.NewGuid() }),
            "foreign-session" => JsonSerializer.Serialize(new { agent_id = ParleyTestServer.LeadQualifierId, message = "hi", session_id = foreignThread }),
            "missing-message" => JsonSerializer.Serialize(new { agent_id = AgentId }),
            "message-not-string" => JsonSerializer.Serialize(new { agent_id = AgentId, message = 5 }),
            "bad-json" => "{agent_id: nope",
            _ => JsonSerializer.Serialize(new { agent_id = AgentId, message = "hi" }),
        };
        foreach (var path in new[] { "/chat/stream", "/chat" })
        {
            var response = await caller.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal((HttpStatusCode)status, response.StatusCode);
            var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal(code, error.GetProperty("code").GetString());
            Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        }

        Assert.Equal(before, server.CountRows());
        Assert.Equal(requestsBefore, Model.Requests.Count);
        Assert.Equal(usageBefore, (await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/usage")).GetProperty("totalTokens").GetInt64());
        _ = foreignOrg;
    }

    [Fact]
    public async Task A_spent_budget_also_refuses_web_chat_messages_with_402_and_every_dialect_is_charged()
    {
        await using var server = await StartAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new TextReply(["web"], 8, 2), new TextReply(["chat"], 6, 1));
        await server.Client.SendAsync(threadId, "from web chat");
        await all.ReadUntilAsync(e => e.EventType == "run.completed");
        await PostStreamAsync(Bearer(server), new { agent_id = AgentId, message = "from chat stream" });
        var usage = await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/usage");
        Assert.Equal(17, usage.GetProperty("totalTokens").GetInt64());

        await server.Services.GetRequiredService<IOrganizationStore>().SetTokenBudgetAsync(Parley.Server.Demo.ParleyStartup.DefaultOrganizationId, 17);
        var refused = await server.Client.PostAsJsonAsync($"/api/v1/threads/{threadId}/messages", new { message = "more" });
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Equal("PAYMENT_REQUIRED", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        await server.Services.GetRequiredService<IOrganizationStore>().SetTokenBudgetAsync(Parley.Server.Demo.ParleyStartup.DefaultOrganizationId, 1000);
        Model.Enqueue(new TextReply(["ok"]));
        Assert.Equal("queued", (await server.Client.SendAsync(threadId, "more")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_key_over_its_rate_limit_gets_429_with_retry_after_and_nothing_is_stored()
    {
        await using var server = await StartAsync();
        var key = ApiKeyHasher.Generate();
        await server.Services.GetRequiredService<IOrganizationStore>().AddApiKeyAsync(new ApiKey(Guid.NewGuid(),
            Parley.Server.Demo.ParleyStartup.DefaultOrganizationId, "limited", ApiKeyHasher.Hash(key), DateTimeOffset.UtcNow, null, RequestsPerMinute: 2));
        var client = Bearer(server, key);
        Model.Enqueue(new TextReply(["one"]), new TextReply(["two"]));
        Assert.Equal(HttpStatusCode.OK, (await PostStreamAsync(client, new { agent_id = AgentId, message = "1" })).Response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await PostStreamAsync(client, new { agent_id = AgentId, message = "2" })).Response.StatusCode);
        var before = server.CountRows();

        var limited = await client.PostAsJsonAsync("/chat/stream", new { agent_id = AgentId, message = "3" });
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single()) >= 1);
        Assert.Equal("rate_limited", (await limited.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        var webLimited = await client.GetAsync("/api/v1/agents");
        Assert.Equal(HttpStatusCode.TooManyRequests, webLimited.StatusCode);
        Assert.Equal("TOO_MANY_REQUESTS", (await webLimited.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
        Assert.Equal(before, server.CountRows());

        // Other keys are not affected.
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/api/v1/agents")).StatusCode);
    }

    [Fact]
    public async Task A_limited_key_gets_requests_again_as_its_bucket_refills()
    {
        // 600 a minute: one request back every 100 ms, after a burst of 2. A slow request lets a token back in between,
        // so the key is driven into its limit by a bounded loop rather than by exactly three requests.
        await using var server = await StartAsync("--Parley:RateLimits:RequestsPerMinute=600", "--Parley:RateLimits:Burst=2");
        var limited = false;
        for (var i = 0; i < 100 && !limited; i++)
            limited = (await server.Client.GetAsync("/api/v1/agents")).StatusCode == HttpStatusCode.TooManyRequests;
        Assert.True(limited, "100 requests in a row never hit the limit");

        // Refilled within a few periods (at most 50 more tries 100 ms apart, so a slow machine cannot hang the test).
        for (var i = 0; i < 50; i++)
        {
            await Task.Delay(100);
            if ((await server.Client.GetAsync("/api/v1/agents")).StatusCode == HttpStatusCode.OK) return;
        }
        Assert.Fail("the key's bucket did not refill within 50 tries 100 ms apart");
    }

    [Fact]
    public async Task Open_streams_per_key_are_limited()
    {
        await using var server = await StartAsync("--Parley:RateLimits:MaxConcurrentStreams=1");
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await using (var first = await SseStream.OpenAsync(server.Client, threadId))
        {
            var second = await server.Client.GetAsync($"/api/v1/threads/{threadId}/stream", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
            Assert.Equal("1", second.Headers.GetValues("Retry-After").Single());
        }
        for (var i = 0; i < 50; i++)
        {
            var again = await server.Client.GetAsync($"/api/v1/threads/{threadId}/stream", HttpCompletionOption.ResponseHeadersRead);
            if (again.StatusCode == HttpStatusCode.OK) return;
            await Task.Delay(100);
        }
        Assert.Fail("the stream slot was not released after the first stream closed");
    }

    [Fact]
    public async Task An_agent_scoped_key_can_use_only_its_agent()
    {
        await using var server = await StartAsync();
        var key = ApiKeyHasher.Generate();
        await server.Services.GetRequiredService<IOrganizationStore>().AddApiKeyAsync(new ApiKey(Guid.NewGuid(),
            Parley.Server.Demo.ParleyStartup.DefaultOrganizationId, "scoped", ApiKeyHasher.Hash(key), DateTimeOffset.UtcNow, null, AgentId: ParleyTestServer.LeadQualifierId));
        var scoped = Bearer(server, key);

        var (ok, _) = await PostStreamAsync(scoped, new { agent_id = ParleyTestServer.LeadQualifierId, message = "hi" });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var before = server.CountRows();
        var refused = await scoped.PostAsJsonAsync("/chat/stream", new { agent_id = AgentId, message = "hi" });
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Equal(before, server.CountRows());

        var agents = await scoped.GetFromJsonAsync<JsonElement>("/api/v1/agents");
        Assert.Equal([ParleyTestServer.LeadQualifierId.ToString()], agents.GetProperty("agents").EnumerateArray().Select(a => a.GetProperty("id").GetString()!));
        var otherThread = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString();
        Assert.Equal(HttpStatusCode.Forbidden, (await scoped.GetAsync($"/api/v1/threads/{otherThread}")).StatusCode);
    }

    [Fact]
    public async Task The_seed_documents_javascript_client_prints_the_streamed_reply()
    {
        var node = FindNode();
        if (node is null) Assert.Skip("node is not installed: the seed's JavaScript client cannot run here");
        await using var server = await StartAsync();
        Model.Enqueue(new TextReply(["Machine learning is", " a subset of artificial intelligence", " that enables systems to learn."]));

        // The client exactly as printed in thinnest-chat-stream.md, with our address, key and agent id filled in.
        var script = """
            const response = await fetch('https://api.thinnest.ai/chat/stream', {
            method: 'POST',
            headers: {
            'Authorization': 'Bearer YOUR_TOKEN',
            'Content-Type': 'application/json',
            },
            body: JSON.stringify({
            agent_id: 'ag_c47e7c97_b2f2',
            message: 'Hello',
            }),
            });
            const reader = response.body.getReader();
            const decoder = new TextDecoder();
            while (true) {
            const { done, value } = await reader.read();
            if (done) break;
            const text = decoder.decode(value);
            for (const line of text.split('\n')) {
            if (line.startsWith('data: ')) {
            const event = JSON.parse(line.slice(6));
            if (event.type === 'text') {
            process.stdout.write(event.content);
            }
            }
            }
            }
            """
            .Replace("https://api.thinnest.ai", server.BaseAddress.ToString().TrimEnd('/'))
            .Replace("YOUR_TOKEN", ParleyTestServer.DemoKey)
            .Replace("ag_c47e7c97_b2f2", AgentId.ToString());
        var file = Path.Combine(Directory.CreateTempSubdirectory("parley-node-").FullName, "client.mjs");
        await File.WriteAllTextAsync(file, script);

        using var process = Process.Start(new ProcessStartInfo(node, file) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try { await process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { process.Kill(entireProcessTree: true); throw; }

        Assert.True(process.ExitCode == 0, await errors);
        Assert.Equal("Machine learning is a subset of artificial intelligence that enables systems to learn.", await output);
    }

    private static string? FindNode() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(dir => Path.Combine(dir, "node"))
            .FirstOrDefault(File.Exists);
}
