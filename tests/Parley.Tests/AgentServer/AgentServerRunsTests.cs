using Microsoft.Extensions.DependencyInjection;
using System.Net;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Parley.Tests.Infrastructure;
using static Parley.Tests.Infrastructure.ScriptedOpenAIServer;

namespace Parley.Tests.AgentServer;

/// <summary>Agent-server runs with a PROMPT agent on a scripted model: streams, wait, join, cancel, multitask strategies, and one core with web chat.</summary>
public sealed class AgentServerRunsTests : ModelRigTests
{
    private string Assistant => AgentId.ToString("D");

    private async Task<ParleyTestServer> StartParleyAsync()
    {
        var agents = TestAgents.NewFolder();
        TestAgents.Write(agents, "story.yaml", AgentServerClient.PromptAgent(AgentId));
        return await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs: Rig.ModelArgs(timeoutSeconds: 30));
    }

    /// <summary>Waits until the scripted model has been called <paramref name="calls"/> times (a run is past its start and streaming).</summary>
    private async Task WaitForModelCallsAsync(int calls)
    {
        for (var i = 0; i < 200 && Model.Requests.Count < calls; i++) await Task.Delay(50);
        Assert.True(Model.Requests.Count >= calls, $"the model was called {Model.Requests.Count} times, expected {calls}");
    }

    /// <summary>A reply slow enough to be caught running: <paramref name="pieces"/> deltas, 100 ms apart.</summary>
    private static TextReply Slow(int pieces = 60) => new([.. Enumerable.Range(0, pieces).Select(i => $"t{i} ")], DelayMs: 100);

    [Fact]
    public async Task A_streamed_run_sends_metadata_values_token_deltas_and_final_values_with_resumable_ids()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new TextReply(["Hel", "lo ", "Ada", "!"]));

        await using var stream = await server.Client.StreamRunAsync(threadId, new
        {
            assistant_id = Assistant,
            input = new { messages = new[] { new { role = "user", content = "hello" } } },
            stream_mode = new[] { "values", "messages-tuple" },
        });
        var location = stream.Response.Content.Headers.ContentLocation?.ToString() ?? string.Join("", stream.Response.Headers.GetValues("Content-Location"));
        var events = await stream.ReadToEndAsync();

        Assert.Equal(["metadata", "values", "messages", "messages", "messages", "messages", "values"], events.Select(e => e.EventType));
        var runId = events[0].Json().GetProperty("run_id").GetString()!;
        Assert.Equal(1, events[0].Json().GetProperty("attempt").GetInt32());
        Assert.EndsWith($"/threads/{threadId}/runs/{runId}", location);
        Assert.Equal("hello", events[1].Json().GetProperty("messages")[0].GetProperty("content").GetString());
        var chunks = events.Where(e => e.EventType == "messages").Select(e => e.Json()).ToList();
        Assert.Equal(["Hel", "lo ", "Ada", "!"], chunks.Select(c => c[0].GetProperty("content").GetString()));
        Assert.All(chunks, c => Assert.Equal("ai", c[0].GetProperty("type").GetString()));
        Assert.All(chunks, c => Assert.Equal(runId, c[1].GetProperty("run_id").GetString()));
        Assert.All(chunks, c => Assert.Equal(Assistant, c[1].GetProperty("assistant_id").GetString()));
        var final = events[^1].Json().GetProperty("messages");
        Assert.Equal(["human", "ai"], final.EnumerateArray().Select(m => m.GetProperty("type").GetString()));
        Assert.Equal("Hello Ada!", final[1].GetProperty("content").GetString());
        Assert.Equal(chunks[0][0].GetProperty("id").GetString(), final[1].GetProperty("id").GetString());
        var ids = events.Select(e => e.EventId!).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());

        var run = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}");
        Assert.Equal("success", run.GetProperty("status").GetString());
        Assert.Equal(Assistant, run.GetProperty("assistant_id").GetString());
        var state = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/state");
        Assert.Equal(final.GetRawText(), state.GetProperty("values").GetProperty("messages").GetRawText());
    }

    [Fact]
    public async Task Updates_and_custom_modes_carry_the_node_update_and_tool_calls()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new TextReply(["Hi"]));
        await using var stream = await server.Client.StreamRunAsync(threadId, new { assistant_id = Assistant, input = new { messages = new[] { new { type = "human", content = new[] { new { type = "text", text = "yo" } } } } }, stream_mode = new[] { "updates" } });
        var events = await stream.ReadToEndAsync();
        Assert.Equal(["metadata", "updates"], events.Select(e => e.EventType));
        Assert.Equal("Hi", events[1].Json().GetProperty("agent").GetProperty("messages")[0].GetProperty("content").GetString());
        var human = (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/state")).GetProperty("values").GetProperty("messages")[0];
        Assert.Equal("yo", human.GetProperty("content").GetString());
    }

    [Fact]
    public async Task A_background_run_is_pending_then_joinable_waitable_and_listed()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new TextReply(["a", "b", "c"], DelayMs: 50));
        var run = await server.Client.CreateRunAsync(threadId, Assistant);
        var runId = run.GetProperty("run_id").GetString()!;
        Assert.Contains(run.GetProperty("status").GetString(), new[] { "pending", "running" });
        Assert.Equal("enqueue", run.GetProperty("multitask_strategy").GetString());

        await using var joined = await server.Client.JoinRunAsync(threadId, runId, query: "stream_mode=messages-tuple");
        var events = await joined.ReadToEndAsync();
        Assert.Equal(["metadata", "messages", "messages", "messages"], events.Select(e => e.EventType));

        var values = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}/join");
        Assert.Equal("abc", values.GetProperty("messages")[1].GetProperty("content").GetString());
        Model.Enqueue(new TextReply(["d"]));
        var waited = await server.Client.OkJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/wait", new { assistant_id = Assistant, input = new { messages = new[] { new { role = "user", content = "more" } } } });
        Assert.Equal(["hi", "abc", "more", "d"], waited.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("content").GetString()));

        var runs = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs");
        Assert.Equal(2, runs.GetArrayLength());
        Assert.Equal(runId, runs[1].GetProperty("run_id").GetString());
        Assert.Single((await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs?limit=1&offset=1")).EnumerateArray());
        Assert.Equal(2, (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs?status=success")).GetArrayLength());
        Assert.Equal("idle", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_failed_run_ends_its_stream_with_an_error_and_leaves_the_thread_in_error()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new ErrorReply(400, "bad request to the model"));
        await using var stream = await server.Client.StreamRunAsync(threadId, new { assistant_id = Assistant, input = new { messages = new[] { new { role = "user", content = "x" } } } });
        var events = await stream.ReadToEndAsync();
        Assert.Equal(["metadata", "values", "error"], events.Select(e => e.EventType));
        Assert.Equal("RunError", events[^1].Json().GetProperty("error").GetString());
        Assert.Contains("400", events[^1].Json().GetProperty("message").GetString());
        Assert.Equal("error", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}")).GetProperty("status").GetString());
        var waited = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{events[0].Json().GetProperty("run_id").GetString()}/join");
        Assert.Equal("RunError", waited.GetProperty("__error__").GetProperty("error").GetString());
    }

    [Fact]
    public async Task Cancel_with_interrupt_stops_a_running_run_keeps_its_input_and_ends_its_streams()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(Slow());
        await using var thread = await server.Client.JoinThreadAsync(threadId, query: "stream_modes=lifecycle");
        var run = await server.Client.CreateRunAsync(threadId, Assistant, "long story");
        var runId = run.GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, runId, s => s == "running");
        await WaitForModelCallsAsync(1);
        await using var joined = await server.Client.JoinRunAsync(threadId, runId, query: "stream_mode=messages-tuple");
        await joined.ReadAsync(3); // metadata and the first deltas: it is streaming
        Assert.Equal("busy", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}")).GetProperty("status").GetString());

        var (status, _) = await server.Client.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/{runId}/cancel?wait=1&action=interrupt");
        Assert.Equal(HttpStatusCode.NoContent, status);

        Assert.Equal("interrupted", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}")).GetProperty("status").GetString());
        Assert.Equal("interrupted", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}")).GetProperty("status").GetString());
        // The run's stream ends (no error event: the run was cancelled, not failed).
        Assert.All(await joined.ReadToEndAsync(), e => Assert.Equal("messages", e.EventType));
        var lifecycle = await thread.ReadAsync(2);
        Assert.Equal(["metadata", "end"], lifecycle.Select(e => e.EventType));
        Assert.Equal("interrupted", lifecycle[1].Json().GetProperty("status").GetString());
        // The input stays; the unfinished reply is not part of the values.
        var messages = (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/state")).GetProperty("values").GetProperty("messages");
        Assert.Equal("long story", Assert.Single(messages.EnumerateArray()).GetProperty("content").GetString());
        var (again, error) = await server.Client.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/{runId}/cancel");
        Assert.Equal(HttpStatusCode.Conflict, again);
        Assert.Contains("has ended", error.Detail());
    }

    [Fact]
    public async Task Cancel_with_rollback_deletes_the_run_and_its_messages()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new TextReply(["kept"]));
        await server.Client.OkJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/wait", new { assistant_id = Assistant, input = new { messages = new[] { new { role = "user", content = "first" } } } });
        Model.Enqueue(Slow());
        var runId = (await server.Client.CreateRunAsync(threadId, Assistant, "second")).GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, runId, s => s == "running");
        await WaitForModelCallsAsync(2);

        var (status, _) = await server.Client.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/{runId}/cancel?wait=1&action=rollback");
        Assert.Equal(HttpStatusCode.NoContent, status);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}")).Status);
        var messages = (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/state")).GetProperty("values").GetProperty("messages");
        Assert.Equal(["first", "kept"], messages.EnumerateArray().Select(m => m.GetProperty("content").GetString()));
        Assert.Equal(2, (await server.Client.HistoryAsync(threadId)).Count);
        Assert.Equal("idle", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Deleting_a_thread_while_its_run_streams_stops_the_run_and_the_server_goes_on()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(Slow(), new TextReply(["after"]));
        var runId = (await server.Client.CreateRunAsync(threadId, Assistant)).GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, runId, s => s == "running");
        await WaitForModelCallsAsync(1);

        Assert.Equal(HttpStatusCode.NoContent, (await server.Client.SendJsonAsync(HttpMethod.Delete, $"/threads/{threadId}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{runId}")).Status);
        var other = await server.Client.CreateAgentServerThreadAsync();
        var values = await server.Client.OkJsonAsync(HttpMethod.Post, $"/threads/{other}/runs/wait", new { assistant_id = Assistant, input = new { messages = new[] { new { role = "user", content = "still there?" } } } });
        Assert.Equal("after", values.GetProperty("messages")[1].GetProperty("content").GetString());
        await server.Services.GetRequiredService<Parley.Core.Runs.RunEngine>().WhenIdleAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1L, server.CountRows().Threads);
    }

    [Fact]
    public async Task Multitask_reject_refuses_with_the_reference_text_and_enqueue_runs_after()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(Slow(20), new TextReply(["second"]));
        var first = (await server.Client.CreateRunAsync(threadId, Assistant, "one")).GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, first, s => s == "running");
        await WaitForModelCallsAsync(1);

        var before = server.CountRows();
        var (status, error) = await server.Client.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs", new { assistant_id = Assistant, input = new { messages = new[] { new { role = "user", content = "x" } } }, multitask_strategy = "reject" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        Assert.Equal("Thread is already running a task. Wait for it to finish or choose a different multitask strategy.", error.Detail());
        Assert.Equal(before, server.CountRows());

        var second = (await server.Client.CreateRunAsync(threadId, Assistant, "two", "enqueue")).GetProperty("run_id").GetString()!;
        Assert.Equal("pending", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{second}")).GetProperty("status").GetString());
        var values = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{second}/join");
        // Messages are stored when they arrive (as in every dialect): the enqueued input precedes the first run's reply.
        Assert.Equal(["one", "two", "t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19 ", "second"],
            values.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("content").GetString()));
        Assert.Equal("success", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{first}")).GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("interrupt")]
    [InlineData("rollback")]
    public async Task Multitask_interrupt_and_rollback_stop_the_running_run_and_start_the_new_one(string strategy)
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(Slow(), new TextReply(["fresh"]));
        var first = (await server.Client.CreateRunAsync(threadId, Assistant, "one")).GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, first, s => s == "running");
        await WaitForModelCallsAsync(1);

        var second = (await server.Client.CreateRunAsync(threadId, Assistant, "two", strategy)).GetProperty("run_id").GetString()!;
        var values = await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{second}/join");

        var contents = values.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("content").GetString()).ToList();
        if (strategy == "interrupt")
        {
            Assert.Equal(["one", "two", "fresh"], contents);
            Assert.Equal("interrupted", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{first}")).GetProperty("status").GetString());
        }
        else
        {
            Assert.Equal(["two", "fresh"], contents);
            Assert.Equal(HttpStatusCode.NotFound, (await server.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{first}")).Status);
        }
        Assert.Equal("success", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{second}")).GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_chat_stream_session_is_a_thread_here_and_its_run_replays_on_the_run_stream()
    {
        await using var server = await StartParleyAsync();
        Model.Enqueue(new TextReply(["one ", "two"]));
        var chat = await server.Client.OkJsonAsync(HttpMethod.Post, "/chat", new { agent_id = Assistant, message = "count" });
        var sessionId = chat.GetProperty("session_id").GetString()!;

        var run = Assert.Single((await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{sessionId}/runs")).EnumerateArray());
        Assert.Equal("success", run.GetProperty("status").GetString());
        await using var joined = await server.Client.JoinRunAsync(sessionId, run.GetProperty("run_id").GetString()!, lastEventId: "-", query: "stream_mode=values&stream_mode=messages-tuple");
        var events = await joined.ReadToEndAsync();
        Assert.Equal(["metadata", "values", "messages", "messages", "values"], events.Select(e => e.EventType));
        Assert.Equal("one two", events[^1].Json().GetProperty("messages")[1].GetProperty("content").GetString());
    }

    [Fact]
    public async Task A_run_started_by_a_web_chat_message_is_joinable_here_with_the_same_ids_and_a_run_started_here_streams_on_web_chat()
    {
        await using var server = await StartParleyAsync();
        var webThread = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        await using var thread = await server.Client.JoinThreadAsync(webThread, query: "stream_modes=run_modes");
        await using var webAll = await SseStream.OpenAsync(server.Client, webThread, events: "all");
        Model.Enqueue(new TextReply(["x", "y"]));
        var sent = await server.Client.SendAsync(webThread, "from the widget");

        var events = await thread.ReadUntilAsync(e => e.EventType == "end");
        Assert.Equal(["metadata", "values", "messages", "messages", "updates", "values", "end"], events.Select(e => e.EventType));
        var runId = events[0].Json().GetProperty("run_id").GetString()!;
        var webEvents = await webAll.ReadUntilAsync(e => e.EventType == "run.completed");
        // The same log: an agent-server id's sequence part is the web chat event id.
        var deltaIds = webEvents.Where(e => e.EventType == "message.delta").Select(e => e.EventId).ToList();
        Assert.Equal(deltaIds, events.Where(e => e.EventType == "messages").Select(e => e.EventId));
        Assert.Equal("success", (await server.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{webThread}/runs/{runId}")).GetProperty("status").GetString());
        await using var joined = await server.Client.JoinRunAsync(webThread, runId, query: "stream_mode=messages-tuple");
        Assert.Equal(deltaIds, (await joined.ReadToEndAsync()).Where(e => e.EventType == "messages").Select(e => e.EventId));

        Model.Enqueue(new TextReply(["z"]));
        await server.Client.CreateRunAsync(webThread, Assistant, "from the sdk");
        var web = await webAll.ReadUntilAsync(e => e.EventType == "run.completed");
        Assert.Contains(web, e => e.EventType == "message.delta" && e.Json().GetProperty("delta").GetString() == "z");
        var history = await server.Client.HistoryAsync(webThread);
        Assert.Equal("from the sdk", history[^2].GetProperty("messageBody").GetString());
        Assert.Equal("z", history[^1].GetProperty("messageBody").GetString());
    }
}
