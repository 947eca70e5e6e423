using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Parley.Tests.Infrastructure;
using static Parley.Tests.Infrastructure.ScriptedOpenAIServer;

namespace Parley.Tests.Prompt;

/// <summary>PROMPT agents end to end: the real OpenAI client against a scripted OpenAI-compatible server on loopback.</summary>
public sealed class PromptAgentTests : ModelRigTests
{

    private string AgentYaml(string model = "test") => $$$"""
        id: {{{AgentId}}}
        name: Support bot
        mode: PROMPT
        model: {{{model}}}
        instructions: "You help {{name}} with orders."
        smsMaxTokens: 200
        smsTemperature: 0.3
        tools:
          - name: lookup_order
            description: Look up an order by its id.
            url: "{{{Webhook.Url}}}"
            secretEnvironmentVariable: {{{Rig.SecretVariable}}}
            parameters:
              type: object
              properties:
                order_id: { type: string, pattern: "^[A-Z]-[0-9]+$" }
              required: [order_id]
              additionalProperties: false
          - type: set_variable
          - type: end_conversation
          - type: hand_off
        """;

    private async Task<ParleyTestServer> StartParleyAsync(int contextTokens = 8000, string? endpoint = null, int retries = 0, double timeoutSeconds = 5)
    {
        var agents = TestAgents.NewFolder();
        TestAgents.Write(agents, "support.yaml", AgentYaml());
        return await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs: Rig.ModelArgs(retries, timeoutSeconds, contextTokens, endpoint));
    }

    [Fact]
    public async Task A_streamed_reply_arrives_delta_by_delta_and_completes_with_its_usage()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId, variables: new { name = "Ada" })).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        await using var messages = await SseStream.OpenAsync(server.Client, threadId);
        Model.Enqueue(new TextReply(["Hel", "lo ", "Ada", "!"], PromptTokens: 31, CompletionTokens: 4, DelayMs: 30));

        await server.Client.SendAsync(threadId, "hi there");
        var events = await all.ReadUntilAsync(e => e.EventType == "run.completed");

        var deltas = events.Where(e => e.EventType == "message.delta").Select(e => e.Json()).ToList();
        Assert.Equal(["Hel", "lo ", "Ada", "!"], deltas.Select(d => d.GetProperty("delta").GetString()!));
        var reply = events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json();
        Assert.Equal("Hello Ada!", reply.GetProperty("messageBody").GetString());
        Assert.All(deltas, d => Assert.Equal(reply.GetProperty("id").GetString(), d.GetProperty("messageId").GetString()));
        Assert.Equal(31, reply.GetProperty("usage").GetProperty("inputTokens").GetInt64());
        Assert.Equal(4, reply.GetProperty("usage").GetProperty("outputTokens").GetInt64());
        var run = events.Last().Json();
        Assert.Equal("success", run.GetProperty("status").GetString());
        Assert.Equal(35, run.GetProperty("usage").GetProperty("totalTokens").GetInt64());
        Assert.True(events.IndexOf(events.First(e => e.EventType == "message.delta")) < events.FindIndex(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")));

        // The plain web chat stream carries the completed message only.
        var plain = await messages.ReadAsync(1);
        Assert.Equal("Hello Ada!", plain[0].Body());

        // The model got the rendered instructions, the history, and the version's settings.
        var request = Model.Requests.Single();
        Assert.Equal("gpt-test", request["model"]!.GetValue<string>());
        Assert.True(request["stream"]!.GetValue<bool>());
        Assert.Equal(0.3, request["temperature"]!.GetValue<double>(), 3);
        Assert.Equal(200, (request["max_completion_tokens"] ?? request["max_tokens"])!.GetValue<int>());
        var sent = request["messages"]!.AsArray();
        Assert.Equal("system", sent[0]!["role"]!.GetValue<string>());
        Assert.Equal("You help Ada with orders.", ContentText(sent[0]!));
        Assert.Equal("hi there", ContentText(sent[^1]!));
        Assert.Equal(["lookup_order", "set_variable", "end_conversation", "hand_off"],
            request["tools"]!.AsArray().Select(t => t!["function"]!["name"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_webhook_tool_call_split_across_chunks_is_signed_answered_and_fed_back_to_the_model()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(
            new ToolCallReply("lookup_order", ["{\"ord", "er_id\":", "\"A-7\"}"]),
            new TextReply(["Order A-7 ", "ships tomorrow."], PromptTokens: 40, CompletionTokens: 6));

        await server.Client.SendAsync(threadId, "where is order A-7?");
        var events = await all.ReadUntilAsync(e => e.EventType == "run.completed");

        var (body, signatureValid) = Assert.Single(Webhook.Calls);
        Assert.True(signatureValid);
        Assert.Equal("A-7", body["arguments"]!["order_id"]!.GetValue<string>());
        Assert.Equal("lookup_order", body["tool"]!.GetValue<string>());
        Assert.Equal(threadId, body["threadId"]!.GetValue<string>());

        var call = events.Single(e => e.EventType == "tool.call").Json();
        Assert.Equal("lookup_order", call.GetProperty("name").GetString());
        Assert.Equal("A-7", call.GetProperty("arguments").GetProperty("order_id").GetString());
        var result = events.Single(e => e.EventType == "tool.result").Json();
        Assert.False(result.GetProperty("isError").GetBoolean());
        Assert.Equal("shipped", result.GetProperty("result").GetProperty("status").GetString());
        Assert.Equal(call.GetProperty("callId").GetString(), result.GetProperty("callId").GetString());
        Assert.Equal("Order A-7 ships tomorrow.", events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json().GetProperty("messageBody").GetString());
        Assert.Equal(20 + 40 + 7 + 6, events.Last().Json().GetProperty("usage").GetProperty("totalTokens").GetInt64());

        var second = Model.Requests.ToArray()[1]["messages"]!.AsArray();
        var toolMessage = second.Single(m => m!["role"]!.GetValue<string>() == "tool")!;
        Assert.Equal("call_1", toolMessage["tool_call_id"]!.GetValue<string>());
        Assert.Contains("shipped", ContentText(toolMessage));
    }

    [Fact]
    public async Task Arguments_that_fail_the_schema_go_back_to_the_model_and_never_reach_the_webhook()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(
            new ToolCallReply("lookup_order", ["{\"order_id\": 7}"]),
            new TextReply(["Which order id, exactly?"]));

        await server.Client.SendAsync(threadId, "where is my order 7");
        var events = await all.ReadUntilAsync(e => e.EventType == "run.completed");

        Assert.Empty(Webhook.Calls);
        var result = events.Single(e => e.EventType == "tool.result").Json();
        Assert.True(result.GetProperty("isError").GetBoolean());
        Assert.Contains("invalid arguments", result.GetProperty("result").GetProperty("error").GetString());
        var toolMessage = Model.Requests.ToArray()[1]["messages"]!.AsArray().Single(m => m!["role"]!.GetValue<string>() == "tool")!;
        Assert.Contains("invalid arguments", ContentText(toolMessage));
        Assert.Equal("Which order id, exactly?", events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json().GetProperty("messageBody").GetString());
    }

    public static TheoryData<string, string> FailureModes() => new()
    {
        { "500", "HTTP 500" },
        { "400", "HTTP 400" },
        { "malformed", "malformed" },
        { "timeout", "timed out" },
        { "down", "could not be reached" },
    };

    [Fact]
    public async Task A_model_that_fails_mid_reply_leaves_the_reply_failed_with_exactly_the_text_clients_were_sent()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new BrokenReply(["Half ", "a ", "sentence"]));

        await server.Client.SendAsync(threadId, "hello?");
        var events = await all.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed", timeoutSeconds: 15);

        Assert.Equal("run.failed", events[^1].EventType);
        Assert.Equal("Half a sentence", string.Concat(events.Where(e => e.EventType == "message.delta").Select(e => e.Json().GetProperty("delta").GetString())));
        var failed = events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json();
        Assert.Equal("FAILED", failed.GetProperty("status").GetString());
        Assert.Equal("Half a sentence", failed.GetProperty("messageBody").GetString());
        // The failed reply is the one the deltas streamed (the same id), and the history keeps its text.
        Assert.Equal(events.First(e => e.EventType == "message.delta").Json().GetProperty("messageId").GetString(), failed.GetProperty("id").GetString());
        var history = await server.Client.HistoryAsync(threadId);
        Assert.Equal("Half a sentence", history[^1].GetProperty("messageBody").GetString());
    }

    [Fact]
    public async Task A_write_that_fails_mid_reply_leaves_the_reply_failed_with_the_text_that_was_stored_and_sent()
    {
        var agents = TestAgents.NewFolder();
        TestAgents.Write(agents, "support.yaml", AgentYaml());
        // The reply's third delta is its second bulk write (the first output goes as a normal one): that write fails.
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents,
            configure: b => b.Services.AddSingleton(sp => FailingWriteStore.Wrap(sp.GetRequiredService<Parley.Storage.Sqlite.SqliteStore>(), failAt: 2)),
            extraArgs: Rig.ModelArgs(0, 5, 8000, null));
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new TextReply(["Half ", "a ", "sentence", " more"], DelayMs: 150));

        await server.Client.SendAsync(threadId, "hello?");
        var events = await all.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed", timeoutSeconds: 15);

        Assert.Equal("run.failed", events[^1].EventType);
        Assert.Contains(FailingWriteStore.Failure, events[^1].Json().GetProperty("error").GetString());
        var sent = events.Where(e => e.EventType == "message.delta").Select(e => e.Json()).ToList();
        Assert.Equal(["Half ", "a "], sent.Select(d => d.GetProperty("delta").GetString()));
        var failed = events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json();
        Assert.Equal("FAILED", failed.GetProperty("status").GetString());
        Assert.Equal("Half a ", failed.GetProperty("messageBody").GetString());
        Assert.Equal(sent[0].GetProperty("messageId").GetString(), failed.GetProperty("id").GetString());
    }

    [Theory]
    [MemberData(nameof(FailureModes))]
    public async Task A_failing_model_fails_the_run_with_a_reason_marks_the_reply_failed_and_the_thread_goes_on(string mode, string expected)
    {
        string? endpoint = null;
        if (mode == "down")
        {
            using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            endpoint = $"http://127.0.0.1:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}/v1";
            listener.Stop(); // nothing listens there now
        }
        await using var server = await StartParleyAsync(endpoint: endpoint, timeoutSeconds: 1);
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(mode switch
        {
            "500" => new ErrorReply(500, "upstream exploded"),
            "400" => new ErrorReply(400, "bad parameter"),
            "malformed" => new MalformedReply(),
            "timeout" => new SilentReply(5000),
            _ => new TextReply(["unused"]),
        });

        await server.Client.SendAsync(threadId, "hello?");
        var events = await all.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed", timeoutSeconds: 15);

        var run = events[^1].Json();
        Assert.Equal("run.failed", events[^1].EventType);
        Assert.Equal("error", run.GetProperty("status").GetString());
        Assert.Contains(expected, run.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        var failed = events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json();
        Assert.Equal("FAILED", failed.GetProperty("status").GetString());

        if (mode == "down") return; // the next message would fail the same way: nothing listens
        Model.Enqueue(new TextReply(["Back again."]));
        await server.Client.SendAsync(threadId, "try again");
        var next = await all.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed");
        Assert.Equal("run.completed", next[^1].EventType);
        var history = await server.Client.HistoryAsync(threadId);
        Assert.Equal(["RECEIVED", "FAILED", "RECEIVED", "SENT"], history.Select(m => m.GetProperty("status").GetString()!));
        Assert.Equal("Back again.", history[^1].GetProperty("messageBody").GetString());
    }

    [Fact]
    public async Task A_transient_failure_before_the_first_token_is_retried()
    {
        await using var server = await StartParleyAsync(retries: 2);
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new ErrorReply(503, "busy"), new TextReply(["Fine now."]));
        await server.Client.SendAsync(threadId, "hello");
        var events = await all.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed");
        Assert.Equal("run.completed", events[^1].EventType);
        Assert.Equal(2, Model.Requests.Count);
    }

    [Fact]
    public async Task The_history_is_trimmed_to_the_token_budget_newest_first()
    {
        await using var server = await StartParleyAsync(contextTokens: 120);
        var threadId = (await server.Client.CreateThreadAsync(AgentId, variables: new { name = "Ada" })).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        var turns = new[] { "alpha", "bravo", "charlie", "delta", "echo" };
        foreach (var word in turns)
        {
            Model.Enqueue(new TextReply([$"noted {word}"]));
            // Each message is about 30 tokens: the budget (120 minus 200 max output... floor) keeps only the newest.
            await server.Client.SendAsync(threadId, string.Join(' ', Enumerable.Repeat(word, 25)));
            await all.ReadUntilAsync(e => e.EventType == "run.completed");
        }
        var last = Model.Requests.ToArray()[^1]["messages"]!.AsArray().Select(m => ContentText(m!)).ToList();
        Assert.Equal("You help Ada with orders.", last[0]);
        Assert.StartsWith("echo echo", last[^1]);
        Assert.DoesNotContain(last, text => text.StartsWith("alpha"));
        Assert.True(last.Count < 1 + 2 * turns.Length, $"expected trimming, got {last.Count} messages");
    }

    [Fact]
    public async Task A_history_longer_than_one_read_reaches_the_model_whole_and_in_order()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId, variables: new { name = "Ada" })).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        // 40 turns are 80 messages: the history is read newest first in pages of 32, then 64.
        const int turns = 40;
        for (var turn = 1; turn <= turns; turn++)
        {
            Model.Enqueue(new TextReply([$"answer {turn}"]));
            await server.Client.SendAsync(threadId, $"question {turn}");
            await all.ReadUntilAsync(e => e.EventType == "run.completed");
        }

        var last = Model.Requests.ToArray()[^1]["messages"]!.AsArray().Select(m => ContentText(m!)).ToList();
        var expected = Enumerable.Range(1, turns).SelectMany(t => t == turns ? [$"question {t}"] : new[] { $"question {t}", $"answer {t}" });
        Assert.Equal(["You help Ada with orders.", .. expected], last);
    }

    [Fact]
    public async Task A_budget_that_fills_inside_a_full_read_sends_no_older_message_even_one_that_would_fit()
    {
        // 600 context tokens minus the agent's 200 output tokens: ≈ 390 for the history after the instructions.
        await using var server = await StartParleyAsync(contextTokens: 600);
        var threadId = (await server.Client.CreateThreadAsync(AgentId, variables: new { name = "Ada" })).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        // 25 turns, 50 messages: the newest 32 (the first read) hold turn 11, whose question is larger than the whole
        // budget. Everything after it fits, and so would turn 1's short "hi", read in the second page: a turn must stop
        // at the first message that does not fit, not skip it and send older ones.
        const int turns = 25, tooLarge = 11;
        for (var turn = 1; turn <= turns; turn++)
        {
            Model.Enqueue(new TextReply([$"answer {turn}"]));
            var question = turn == 1 ? "hi" : turn == tooLarge ? string.Join(' ', Enumerable.Repeat("lorem", 1000)) : $"question {turn}";
            await server.Client.SendAsync(threadId, question);
            await all.ReadUntilAsync(e => e.EventType == "run.completed");
        }

        var last = Model.Requests.ToArray()[^1]["messages"]!.AsArray().Select(m => ContentText(m!)).ToList();
        var expected = Enumerable.Range(tooLarge + 1, turns - tooLarge).SelectMany(t => t == turns ? [$"question {t}"] : new[] { $"question {t}", $"answer {t}" });
        Assert.Equal(["You help Ada with orders.", $"answer {tooLarge}", .. expected], last);
    }

    [Fact]
    public async Task A_reply_costs_the_context_the_output_tokens_its_model_reported()
    {
        // 320 context tokens minus the agent's 200 output tokens: 120 for the prompt.
        await using var server = await StartParleyAsync(contextTokens: 320);
        var threadId = (await server.Client.CreateThreadAsync(AgentId, variables: new { name = "Ada" })).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        // ≈ 200 tokens by the tokenizer, more than the whole budget; the model says it wrote 6.
        var longReply = string.Join(' ', Enumerable.Repeat("lorem", 200));
        Model.Enqueue(new TextReply([longReply], CompletionTokens: 6), new TextReply(["ok"]));
        await server.Client.SendAsync(threadId, "first");
        await all.ReadUntilAsync(e => e.EventType == "run.completed");
        await server.Client.SendAsync(threadId, "second");
        await all.ReadUntilAsync(e => e.EventType == "run.completed");

        var second = Model.Requests.ToArray()[^1]["messages"]!.AsArray().Select(m => ContentText(m!)).ToList();
        Assert.Contains(longReply, second); // weighed at 6 + 4 tokens, it fits; re-tokenized, it would have been dropped
        Assert.Equal("second", second[^1]);
    }

    [Fact]
    public async Task Usage_is_recorded_per_message_per_run_and_per_organization()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new TextReply(["one"], 10, 1), new TextReply(["two"], 20, 2));
        await server.Client.SendAsync(threadId, "first");
        await all.ReadUntilAsync(e => e.EventType == "run.completed");
        await server.Client.SendAsync(threadId, "second");
        await all.ReadUntilAsync(e => e.EventType == "run.completed");

        var history = await server.Client.HistoryAsync(threadId);
        Assert.Equal([11L, 22L], history.Where(m => m.GetProperty("direction").GetString() == "OUTBOUND").Select(m => m.GetProperty("usage").GetProperty("totalTokens").GetInt64()));
        var usage = await server.Client.GetFromJsonAsync<JsonElement>("/api/v1/usage");
        Assert.Equal(2, usage.GetProperty("runs").GetInt64());
        Assert.Equal(30, usage.GetProperty("inputTokens").GetInt64());
        Assert.Equal(3, usage.GetProperty("outputTokens").GetInt64());
        Assert.Equal(33, usage.GetProperty("totalTokens").GetInt64());
        var (_, other) = await server.CreateOrganizationAsync("Other");
        Assert.Equal(0, (await other.GetFromJsonAsync<JsonElement>("/api/v1/usage")).GetProperty("totalTokens").GetInt64());
    }

    [Fact]
    public async Task Built_in_tools_set_a_variable_and_end_the_conversation_after_the_reply()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(
            new ToolCallReply("set_variable", ["{\"name\":\"email\",\"value\":\"ada@example.com\"}"], CallId: "c1"),
            new ToolCallReply("end_conversation", ["{\"reason\":\"user_said_bye\"}"], CallId: "c2"),
            new TextReply(["Bye, Ada!"]));
        await server.Client.SendAsync(threadId, "I'm ada@example.com, bye");
        var events = await all.ReadUntilAsync(e => e.EventType == "run.completed");

        var types = events.Select(e => e.EventType).ToList();
        Assert.True(types.IndexOf("message.created", types.IndexOf("run.started")) < types.IndexOf("thread.closed"), string.Join(",", types));
        var thread = await server.Client.GetThreadAsync(threadId);
        Assert.Equal("ada@example.com", thread.GetProperty("variables").GetProperty("email").GetString());
        Assert.False(thread.GetProperty("isActive").GetBoolean());
        Assert.Equal("user_said_bye", thread.GetProperty("closedReason").GetString());
    }

    [Fact]
    public async Task A_flow_prompt_node_streams_a_model_reply_between_scripted_steps()
    {
        var agents = TestAgents.NewFolder();
        var flowAgent = Guid.NewGuid();
        TestAgents.Write(agents, "hybrid.yaml", $$$"""
            id: {{{flowAgent}}}
            name: Hybrid
            mode: FLOW
            model: test
            flow:
              start: hello
              nodes:
                hello: { type: say, text: "Let me think about {{topic}}.", next: think }
                think: { type: prompt, prompt: "Explain {{topic}} in one line.", next: ask }
                ask: { type: ask, text: "Anything else?", variable: more, next: hello }
            """);
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs:
            ["--Parley:Models:test:Provider=openai", $"--Parley:Models:test:Endpoint={Model.Endpoint}", "--Parley:Models:test:Model=gpt-test", "--Parley:Models:test:MaxRetries=0"]);
        var threadId = (await server.Client.CreateThreadAsync(flowAgent, variables: new { topic = "SSE" })).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new TextReply(["Servers ", "push ", "events."]));
        await server.Client.SendAsync(threadId, "go");
        var events = await all.ReadUntilAsync(e => e.EventType == "run.completed");

        var outbound = events.Where(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Select(e => e.Json().GetProperty("messageBody").GetString()).ToList();
        Assert.Equal(["Let me think about SSE.", "Servers push events.", "Anything else?"], outbound);
        Assert.Equal(3, events.Count(e => e.EventType == "message.delta"));
        Assert.Equal("Explain SSE in one line.", ContentText(Model.Requests.Single()["messages"]!.AsArray()[0]!));
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_reply_does_not_stop_the_run()
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Model.Enqueue(new TextReply(["a", "b", "c", "d", "e", "f"], DelayMs: 100));
        await server.Client.SendAsync(threadId, "go");
        await stream.ReadUntilAsync(e => e.EventType == "message.delta");
        await stream.DisposeAsync();

        for (var i = 0; i < 50; i++)
        {
            var history = await server.Client.HistoryAsync(threadId);
            if (history.Count == 2)
            {
                Assert.Equal("abcdef", history[1].GetProperty("messageBody").GetString());
                Assert.Equal("SENT", history[1].GetProperty("status").GetString());
                return;
            }
            await Task.Delay(100);
        }
        Assert.Fail("the reply was not completed after the client left");
    }

    private static string ContentText(JsonNode message) => message["content"] switch
    {
        JsonValue v => v.GetValue<string>(),
        JsonArray parts => string.Concat(parts.Select(p => p!["text"]?.GetValue<string>() ?? "")),
        _ => "",
    };
}

/// <summary>Ollama's native chat API (<c>/api/chat</c>, NDJSON streaming) through OllamaSharp.</summary>
public sealed class OllamaProviderTests
{
    [Fact]
    public async Task An_ollama_model_streams_its_reply_and_reports_usage()
    {
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var ollama = builder.Build();
        JsonNode? seen = null;
        ollama.MapPost("/api/chat", async (Microsoft.AspNetCore.Http.HttpContext context) =>
        {
            seen = await JsonNode.ParseAsync(context.Request.Body);
            context.Response.ContentType = "application/x-ndjson";
            foreach (var piece in new[] { "Hi ", "from ", "Ollama." })
            {
                await context.Response.WriteAsync(JsonSerializer.Serialize(new { model = "llama-test", created_at = "2026-11-24T20:00:00Z", message = new { role = "assistant", content = piece }, done = false }) + "\n");
                await context.Response.Body.FlushAsync();
            }
            await context.Response.WriteAsync(JsonSerializer.Serialize(new { model = "llama-test", created_at = "2026-11-24T20:00:01Z", message = new { role = "assistant", content = "" }, done = true, done_reason = "stop", prompt_eval_count = 9, eval_count = 3 }) + "\n");
        });
        await ollama.StartAsync();
        var endpoint = ollama.Urls.First();

        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "local.yaml", $"id: {agentId}\nname: Local\nmode: PROMPT\nmodel: local\ninstructions: Be brief.\n");
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs:
            ["--Parley:Models:local:Provider=ollama", $"--Parley:Models:local:Endpoint={endpoint}", "--Parley:Models:local:Model=llama-test", "--Parley:Models:local:MaxRetries=0"]);
        var threadId = (await server.Client.CreateThreadAsync(agentId)).GetProperty("id").GetString()!;
        await using var all = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        await server.Client.SendAsync(threadId, "hello");
        var events = await all.ReadUntilAsync(e => e.EventType is "run.completed" or "run.failed");

        Assert.Equal("run.completed", events[^1].EventType);
        Assert.Equal(["Hi ", "from ", "Ollama."], events.Where(e => e.EventType == "message.delta").Select(e => e.Json().GetProperty("delta").GetString()!));
        var reply = events.Single(e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND")).Json();
        Assert.Equal("Hi from Ollama.", reply.GetProperty("messageBody").GetString());
        Assert.Equal(12, reply.GetProperty("usage").GetProperty("totalTokens").GetInt64());
        Assert.Equal("llama-test", seen!["model"]!.GetValue<string>());
    }
}
