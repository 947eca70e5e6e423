using System.Net.ServerSentEvents;
using System.Text;
using Parley.Tests.Infrastructure;
using static Parley.Tests.Infrastructure.ScriptedOpenAIServer;

namespace Parley.Tests.AgentServer;

/// <summary>
/// Resume of agent-server streams (seed langgraph-join-thread-stream.md): after every event boundary of a run, on the
/// run stream and on the thread stream, whichever dialect started the run — no gap, no duplicate.
/// </summary>
public sealed class AgentServerStreamResumeTests : ModelRigTests
{
    private const string AllModes = "stream_mode=values&stream_mode=messages-tuple&stream_mode=updates&stream_mode=custom";

    private async Task<ParleyTestServer> StartParleyAsync()
    {
        var agents = TestAgents.NewFolder();
        TestAgents.Write(agents, "story.yaml", AgentServerClient.PromptAgent(AgentId));
        return await ParleyTestServer.StartAsync(agentsFolder: agents, extraArgs: Rig.ModelArgs(timeoutSeconds: 30));
    }

    [Fact]
    public async Task A_run_stream_resumed_after_any_of_its_events_continues_with_exactly_the_rest()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new TextReply(["Once ", "upon ", "a ", "time."]));
        var runId = (await server.Client.CreateRunAsync(threadId, AgentId.ToString("D"))).GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, runId, s => s == "success");

        await using var full = await server.Client.JoinRunAsync(threadId, runId, query: AllModes);
        var all = (await full.ReadToEndAsync()).Shape();
        // metadata, values (input), 4 token chunks, updates + values (one log event, two ids).
        Assert.Equal(["metadata", "values", "messages", "messages", "messages", "messages", "updates", "values"], all.Select(e => e.Event));
        Assert.Contains(all, e => e.Id!.Contains('-'));

        for (var i = 0; i < all.Count; i++)
        {
            await using var resumed = await server.Client.JoinRunAsync(threadId, runId, lastEventId: all[i].Id, query: AllModes);
            Assert.Equal(all.Skip(i + 1).ToList(), (await resumed.ReadToEndAsync()).Shape());
        }
        foreach (var fromStart in new[] { "-", "-1" })
        {
            await using var again = await server.Client.JoinRunAsync(threadId, runId, lastEventId: fromStart, query: AllModes);
            Assert.Equal(all, (await again.ReadToEndAsync()).Shape());
        }
    }

    [Fact]
    public async Task The_thread_stream_resumed_after_any_event_continues_with_exactly_the_rest_and_then_the_next_run()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        Model.Enqueue(new TextReply(["a", "b"]), new TextReply(["c"]));
        var runId = (await server.Client.CreateRunAsync(threadId, AgentId.ToString("D"), "first")).GetProperty("run_id").GetString()!;
        await server.Client.WaitForRunAsync(threadId, runId, s => s == "success");

        await using var full = await server.Client.JoinThreadAsync(threadId, lastEventId: "-", query: "stream_modes=run_modes&stream_modes=state_update");
        var all = (await full.ReadUntilAsync(e => e.EventType == "end")).Shape();
        Assert.Equal(["values", "metadata", "values", "messages", "messages", "updates", "values", "end"], all.Select(e => e.Event));

        for (var i = 0; i < all.Count - 1; i++)
        {
            await using var resumed = await server.Client.JoinThreadAsync(threadId, lastEventId: all[i].Id, query: "stream_modes=run_modes&stream_modes=state_update");
            Assert.Equal(all.Skip(i + 1).ToList(), (await resumed.ReadAsync(all.Count - 1 - i)).Shape());
        }

        // Resumed after the last event, the stream stays open, sends nothing old, and carries the next run.
        await using var tail = await server.Client.JoinThreadAsync(threadId, lastEventId: all[^1].Id, query: "stream_modes=run_modes");
        await using var fromNow = await server.Client.JoinThreadAsync(threadId, query: "stream_modes=lifecycle");
        var next = (await server.Client.CreateRunAsync(threadId, AgentId.ToString("D"), "second")).GetProperty("run_id").GetString()!;
        var first = await tail.NextAsync();
        Assert.Equal("metadata", first?.EventType);
        Assert.Equal(next, first!.Value.Json().GetProperty("run_id").GetString());
        var lifecycle = await fromNow.ReadAsync(2);
        Assert.Equal(["metadata", "end"], lifecycle.Select(e => e.EventType));
        Assert.Equal(next, lifecycle[1].Json().GetProperty("run_id").GetString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(9)]
    public async Task A_client_that_drops_mid_run_and_rejoins_with_its_last_id_misses_nothing_of_a_web_chat_run(int readBeforeDrop)
    {
        await using var server = await StartParleyAsync();
        var threadId = (await server.Client.CreateThreadAsync(AgentId)).GetProperty("id").GetString()!;
        Model.Enqueue(new TextReply([.. Enumerable.Range(0, 12).Select(i => $"w{i} ")], DelayMs: 60));
        var seen = new List<(string? Id, string Event, string Data)>();
        await using (var first = await server.Client.JoinThreadAsync(threadId, query: "stream_mode=%5B%22run_modes%22%5D"))
        {
            await server.Client.SendAsync(threadId, "go");
            seen.AddRange((await first.ReadAsync(readBeforeDrop)).Shape());
        }
        await using (var second = await server.Client.JoinThreadAsync(threadId, lastEventId: seen[^1].Id, query: "stream_mode=%5B%22run_modes%22%5D"))
            seen.AddRange((await second.ReadUntilAsync(e => e.EventType == "end")).Shape());

        await using var replay = await server.Client.JoinThreadAsync(threadId, lastEventId: "-", query: "stream_modes=run_modes");
        var expected = (await replay.ReadUntilAsync(e => e.EventType == "end")).Shape();
        Assert.Equal(expected, seen);
        Assert.Equal(12, seen.Count(e => e.Event == "messages"));
    }

    [Fact]
    public async Task An_idle_thread_stream_stays_open_with_heartbeat_comments()
    {
        await using var server = await StartParleyAsync();
        var threadId = await server.Client.CreateAgentServerThreadAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/threads/{threadId}/stream");
        using var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        await using var body = await response.Content.ReadAsStreamAsync();
        var text = new StringBuilder();
        var buffer = new byte[256];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        // Comment lines with no blank line after them (see AgentServerStreamResult.Heartbeat).
        while (!text.ToString().Contains(": ping\n: ping\n"))
            text.Append(Encoding.UTF8.GetString(buffer, 0, await body.ReadAsync(buffer, timeout.Token)));
        Assert.DoesNotContain("event:", text.ToString());
    }
}
