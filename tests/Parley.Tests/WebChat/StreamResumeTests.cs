using System.Net.ServerSentEvents;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>Dropping and resuming the stream with Last-Event-ID loses nothing and repeats nothing.</summary>
public sealed class StreamResumeTests
{
    private static string Key(SseItem<string> e) => $"{e.EventId}|{e.EventType}|{e.Data}";

    private static async Task<List<SseItem<string>>> ReadToEndAsync(SseStream stream)
    {
        var items = new List<SseItem<string>>();
        while (await stream.NextAsync() is { } item) items.Add(item);
        return items;
    }

    [Fact]
    public async Task Resuming_after_any_event_yields_exactly_the_rest_of_the_uninterrupted_stream()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        foreach (var text in new[] { "hi", "Ada", "ada@example.com", "Just browsing" })
            await client.SendAsync(threadId, text);

        // The last answer ends the flow; the full stream ends with the end of the run that closed the thread.
        await using var full = await SseStream.OpenAsync(client, threadId, events: "all");
        var all = await ReadToEndAsync(full);
        Assert.True(all[^2..].Select(e => e.EventType).SequenceEqual(["thread.closed", "run.completed"]), string.Join("\n", all.Select(e => $"{e.EventId} {e.EventType} {e.Data}")));
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => i.ToString()), all.Select(e => e.EventId));

        for (var k = 0; k < all.Count - 1; k++)
        {
            await using var resumed = await SseStream.OpenAsync(client, threadId, lastEventId: all[k].EventId, events: "all");
            Assert.Equal(all.Skip(k + 1).Select(Key), (await ReadToEndAsync(resumed)).Select(Key));
        }
        var afterLast = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/threads/{threadId}/stream?events=all");
        afterLast.Headers.Add("Last-Event-ID", all[^1].EventId);
        Assert.Equal(System.Net.HttpStatusCode.NoContent, (await client.SendAsync(afterLast)).StatusCode);

        // The default projection resumes the same way: only outbound messages, ids are their event sequences.
        var messages = all.Where(e => e.EventType == "message.created" && e.Data.Contains("\"OUTBOUND\"")).ToList();
        await using var fromStart = await SseStream.OpenAsync(client, threadId);
        var projected = await ReadToEndAsync(fromStart);
        Assert.Equal(messages.Select(e => (e.EventId, e.Data)), projected.Select(e => (e.EventId, e.Data)));
        Assert.All(projected, e => Assert.Equal("message", e.EventType));
        await using var fromSecond = await SseStream.OpenAsync(client, threadId, lastEventId: messages[1].EventId);
        Assert.Equal(messages.Skip(2).Select(e => e.EventId), (await ReadToEndAsync(fromSecond)).Select(e => e.EventId));
    }

    [Fact]
    public async Task A_stream_cut_in_the_middle_of_a_reply_resumes_with_the_rest_of_the_reply_exactly_once()
    {
        await using var webhook = await BlockingWebhook.StartAsync();
        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "tickets.yaml", TestAgents.WebhookAgent(agentId, webhook.Url));
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents);
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(agentId)).GetProperty("id").GetString()!;

        var first = await SseStream.OpenAsync(client, threadId, events: "all");
        await client.SendAsync(threadId, "where is my order?");
        // Read into the reply: its first message and the webhook call are out; the run now waits on the webhook.
        var before = await first.ReadUntilAsync(e => e.EventType == "tool.call");
        Assert.Contains(before, e => e.EventType == "message.created" && e.Data.Contains("Checking your order..."));
        await webhook.Called;
        await first.DisposeAsync();

        // Reconnect while the run is still in progress, then let it finish.
        await using var second = await SseStream.OpenAsync(client, threadId, lastEventId: before[^1].EventId, events: "all");
        webhook.Release();
        var after = await second.ReadUntilAsync(e => e.EventType == "run.completed");

        var seen = before.Concat(after).ToList();
        Assert.Equal(Enumerable.Range(1, seen.Count).Select(i => i.ToString()), seen.Select(e => e.EventId));
        Assert.Single(seen, e => e.EventType == "message.created" && e.Data.Contains("Your ticket is T-42."));
        Assert.Single(seen, e => e.EventType == "message.created" && e.Data.Contains("Anything else?"));
        Assert.Single(seen, e => e.EventType == "tool.result");

        await using var replay = await SseStream.OpenAsync(client, threadId, events: "all");
        var stored = await replay.ReadUntilAsync(e => e.EventType == "run.completed");
        Assert.Equal(stored.Select(Key), seen.Select(Key));
        Assert.Equal(1, webhook.Calls);
    }

    [Fact]
    public async Task A_reply_whose_tokens_were_stored_several_to_a_row_resumes_after_any_token_with_exactly_the_rest()
    {
        // The scripted model yields its 40 tokens at once, so the run writes them in batches and SQLite packs each
        // batch's deltas into one row (SqliteStore.EventInserter): resuming must split a row at any point.
        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "streamer.yaml", $"id: {agentId}\nname: Streamer\nmode: PROMPT\nmodel: fast\ninstructions: Stream.\n");
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents,
            extraArgs: ["--Parley:Models:fast:Provider=scripted", "--Parley:Models:fast:ScriptedTokens=40"]);
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(agentId)).GetProperty("id").GetString()!;
        await using var live = await SseStream.OpenAsync(client, threadId, events: "all");
        await client.SendAsync(threadId, "hi");
        var all = await live.ReadUntilAsync(e => e.EventType == "run.completed");
        Assert.Equal(40, all.Count(e => e.EventType == "message.delta"));
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => i.ToString()), all.Select(e => e.EventId));

        Assert.True(server.CountPackedEventRows() > 0, "the reply's deltas were all stored one to a row, so this test resumes inside no packed row");
        for (var k = 0; k < all.Count - 1; k++)
        {
            await using var resumed = await SseStream.OpenAsync(client, threadId, lastEventId: all[k].EventId, events: "all");
            Assert.Equal(all.Skip(k + 1).Select(Key), (await resumed.ReadUntilAsync(e => e.EventType == "run.completed")).Select(Key));
        }
    }

    [Fact]
    public async Task An_idle_stream_gets_heartbeat_comments_and_the_sse_headers()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        using var response = await server.Client.GetAsync($"/api/v1/threads/{threadId}/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("no-cache", response.Headers.CacheControl!.ToString());
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var line = await reader.ReadLineAsync(timeout.Token);
        Assert.Equal(": ping", line);
    }
}
