using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>The README's quickstart, message by message, against the shipped demo agent over real HTTP and SSE.</summary>
public sealed class QuickstartConversationTests : IAsyncLifetime
{
    private ParleyTestServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await ParleyTestServer.StartAsync();
    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task The_demo_agent_qualifies_a_lead_and_closes_the_thread()
    {
        var client = _server.Client;
        var thread = await client.CreateThreadAsync(ParleyTestServer.LeadQualifierId, metadata: new { source = "quickstart" });
        var threadId = thread.GetProperty("id").GetString()!;
        Assert.True(thread.GetProperty("isActive").GetBoolean());
        Assert.Equal("Lead qualifier", thread.GetProperty("agentDetails").GetProperty("name").GetString());
        Assert.Equal("FLOW", thread.GetProperty("agentVersionDetails").GetProperty("mode").GetString());
        Assert.Equal("quickstart", thread.GetProperty("metadata").GetProperty("source").GetString());

        await using var stream = await SseStream.OpenAsync(client, threadId);

        async Task<List<string>> SayAsync(string text, int replies)
        {
            var sent = await client.SendAsync(threadId, text);
            Assert.Equal("queued", sent.GetProperty("status").GetString());
            Assert.Equal(86400, sent.GetProperty("windowExpiresIn").GetInt64());
            var events = await stream.ReadAsync(replies);
            Assert.All(events, e => Assert.Equal("message", e.EventType));
            Assert.All(events, e => Assert.Equal("OUTBOUND", e.Json().GetProperty("direction").GetString()));
            return events.Select(e => e.Body()).ToList();
        }

        Assert.Equal(
            ["Hi! I'm Parley's demo assistant. I'll ask three quick questions so the right person can follow up.", "What's your name?"],
            await SayAsync("hi", 2));
        Assert.Equal(["Thanks, Ada! What's your email address?"], await SayAsync("Ada", 1));
        Assert.Equal(["That doesn't look like an email address. Could you check it? (for example ada@example.com)"], await SayAsync("ada@", 1));

        await client.SendAsync(threadId, "ada@example.com");
        var question = (await stream.ReadAsync(1))[0].Json();
        Assert.Equal("What can we help you with?", question.GetProperty("messageBody").GetString());
        Assert.Equal(["Sales", "Support", "Just browsing"], question.GetProperty("quickReplies").EnumerateArray().Select(e => e.GetString()!));

        Assert.Equal(["How many people are on your team?"], await SayAsync("sales", 1));
        Assert.Equal(["Great, Ada! A team of 120 qualifies for a guided demo. Our sales team will email ada@example.com within one business day. Goodbye!"],
            await SayAsync("120", 1));

        // The flow ended: the stream ends, the thread is closed with the flow's reason, variables hold the answers.
        Assert.Null(await stream.NextAsync());
        var closed = await client.GetThreadAsync(threadId);
        Assert.False(closed.GetProperty("isActive").GetBoolean());
        Assert.Equal("qualified_enterprise", closed.GetProperty("closedReason").GetString());
        var variables = closed.GetProperty("variables");
        Assert.Equal("Ada", variables.GetProperty("name").GetString());
        Assert.Equal("ada@example.com", variables.GetProperty("email").GetString());
        Assert.Equal("Sales", variables.GetProperty("need").GetString());
        Assert.Equal("120", variables.GetProperty("teamSize").GetString());

        var history = await client.HistoryAsync(threadId);
        Assert.Equal(
            ["INBOUND", "OUTBOUND", "OUTBOUND", "INBOUND", "OUTBOUND", "INBOUND", "OUTBOUND", "INBOUND", "OUTBOUND", "INBOUND", "OUTBOUND", "INBOUND", "OUTBOUND"],
            history.Select(m => m.GetProperty("direction").GetString()!));
        Assert.Equal("hi", history[0].GetProperty("messageBody").GetString());
        Assert.All(history, m => Assert.Equal(threadId, m.GetProperty("threadId").GetString()));

        var refused = await client.PostAsJsonAsync($"/api/v1/threads/{threadId}/messages", new { message = "hello again" });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var error = await refused.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains("closed", error.GetProperty("message").GetString());

        // Reconnecting to a closed thread with nothing left to send answers 204, so EventSource stops retrying.
        var last = history[^1].GetProperty("sequence").GetInt64();
        var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/threads/{threadId}/stream");
        request.Headers.Add("Last-Event-ID", last.ToString());
        Assert.Equal(HttpStatusCode.NoContent, (await client.SendAsync(request)).StatusCode);
    }

    [Fact]
    public async Task A_support_request_hands_the_thread_to_a_human_and_later_messages_start_no_reply()
    {
        var client = _server.Client;
        var threadId = (await client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(client, threadId, events: "all");

        foreach (var text in new[] { "hello", "Grace", "grace@example.com" })
        {
            await client.SendAsync(threadId, text);
            await stream.ReadUntilAsync(e => e.EventType == "run.completed");
        }
        await client.SendAsync(threadId, "2");
        var events = await stream.ReadUntilAsync(e => e.EventType == "run.completed");
        var handoff = events.Where(e => e.EventType == "message.created").Select(e => e.Json()).Last();
        Assert.Equal("Thanks, Grace. I'm handing you over to a support engineer, who will reply here.", handoff.GetProperty("messageBody").GetString());
        var state = events.Last(e => e.EventType == "state.updated").Json().GetProperty("state");
        Assert.Equal("human", state.GetProperty("control").GetString());

        var thread = await client.GetThreadAsync(threadId);
        Assert.True(thread.GetProperty("isActive").GetBoolean());
        Assert.Equal("human", thread.GetProperty("control").GetString());
        Assert.Equal("Support", thread.GetProperty("variables").GetProperty("need").GetString());

        var stored = await client.SendAsync(threadId, "my printer is on fire");
        Assert.Equal("stored", stored.GetProperty("status").GetString());
        var inbound = await stream.NextAsync();
        Assert.Equal("message.created", inbound!.Value.EventType);
        Assert.Equal("INBOUND", inbound.Value.Json().GetProperty("direction").GetString());
        // No run follows: the next thing on the idle stream is silence (heartbeats are comments, not events).
        await Assert.ThrowsAsync<TimeoutException>(() => stream.NextAsync(timeoutSeconds: 1.5));

        // The operator answers on the thread; the reply is an outbound message with no run.
        var reply = await client.PostAsJsonAsync($"/api/v1/threads/{threadId}/operator-messages", new { message = "Unplug it now, I'm on my way." });
        Assert.Equal(HttpStatusCode.OK, reply.StatusCode);
        var operatorMessage = (await stream.NextAsync())!.Value.Json();
        Assert.Equal("OUTBOUND", operatorMessage.GetProperty("direction").GetString());
        Assert.Equal("Unplug it now, I'm on my way.", operatorMessage.GetProperty("messageBody").GetString());
        Assert.Equal(JsonValueKind.Null, operatorMessage.GetProperty("runId").ValueKind);

        // Released, the thread is the agent's again and the flow starts over with the next message.
        var released = await client.PostAsync($"/api/v1/threads/{threadId}/release", null);
        Assert.Equal(HttpStatusCode.OK, released.StatusCode);
        Assert.Equal("agent", (await released.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("thread").GetProperty("control").GetString());
        Assert.Equal("queued", (await client.SendAsync(threadId, "thanks, back to the bot")).GetProperty("status").GetString());
        var again = await stream.ReadUntilAsync(e => e.EventType == "run.completed");
        Assert.Contains(again, e => e.EventType == "message.created" && e.Data.Contains("What's your name?"));
    }
}
