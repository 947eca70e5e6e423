using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.WebChat;

/// <summary>Restart, window expiry, closing, discarded messages and agent file changes.</summary>
public sealed class ThreadLifecycleTests
{
    [Fact]
    public async Task After_a_restart_history_and_state_are_intact_and_the_conversation_goes_on()
    {
        var first = await ParleyTestServer.StartAsync();
        var threadId = (await first.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId, variables: new { campaign = "spring" })).GetProperty("id").GetString()!;
        await first.Client.SendAsync(threadId, "hi");
        await first.Client.SendAsync(threadId, "Ada");
        await using (var stream = await SseStream.OpenAsync(first.Client, threadId))
            await stream.ReadAsync(3);
        var historyBefore = await first.Client.HistoryAsync(threadId);
        var folder = first.Folder;
        await first.StopAsync();

        await using var second = await ParleyTestServer.StartAsync(folder);
        var historyAfter = await second.Client.HistoryAsync(threadId);
        Assert.Equal(historyBefore.Select(m => m.GetRawText()), historyAfter.Select(m => m.GetRawText()));
        var thread = await second.Client.GetThreadAsync(threadId);
        Assert.Equal("Ada", thread.GetProperty("variables").GetProperty("name").GetString());
        Assert.Equal("spring", thread.GetProperty("variables").GetProperty("campaign").GetString());

        // The flow continues where it stopped: the email question was pending.
        await using var resumed = await SseStream.OpenAsync(second.Client, threadId, lastEventId: historyAfter[^1].GetProperty("sequence").GetInt64().ToString());
        await second.Client.SendAsync(threadId, "ada@example.com");
        Assert.Equal("What can we help you with?", (await resumed.ReadAsync(1))[0].Body());
    }

    [Fact]
    public async Task A_thread_whose_window_ran_out_is_closed_with_the_reason_and_refuses_messages()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await ParleyTestServer.StartAsync(configure: b => b.Services.AddSingleton<TimeProvider>(clock));
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;

        clock.Advance(TimeSpan.FromHours(23));
        Assert.Equal(3600, (await client.GetThreadAsync(threadId)).GetProperty("windowExpiresIn").GetInt64());
        var sent = await client.SendAsync(threadId, "hi"); // restarts the 24 h window
        Assert.Equal(86400, sent.GetProperty("windowExpiresIn").GetInt64());
        clock.Advance(TimeSpan.FromHours(23));
        Assert.True((await client.GetThreadAsync(threadId)).GetProperty("isActive").GetBoolean());

        clock.Advance(TimeSpan.FromHours(2));
        var refused = await client.PostAsJsonAsync($"/api/v1/threads/{threadId}/messages", new { message = "still there?" });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("closed", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message").GetString());

        var thread = await client.GetThreadAsync(threadId);
        Assert.False(thread.GetProperty("isActive").GetBoolean());
        Assert.Equal("window_expired", thread.GetProperty("closedReason").GetString());
        Assert.NotEqual(JsonValueKind.Null, thread.GetProperty("closedAt").ValueKind);
        Assert.DoesNotContain(await client.HistoryAsync(threadId), m => m.GetProperty("messageBody").GetString() == "still there?");
    }

    [Fact]
    public async Task The_expiry_sweep_closes_idle_threads_without_a_new_message()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await ParleyTestServer.StartAsync(configure: b => b.Services.AddSingleton<TimeProvider>(clock));
        var threadId = (await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(server.Client, threadId, events: "all");
        Assert.Equal("thread.created", (await stream.NextAsync())!.Value.EventType);

        clock.Advance(TimeSpan.FromHours(25)); // fires the sweep's timer
        var closed = await stream.NextAsync();
        Assert.Equal("thread.closed", closed!.Value.EventType);
        Assert.Equal("window_expired", closed.Value.Json().GetProperty("closedReason").GetString());
        Assert.Null(await stream.NextAsync());
    }

    [Fact]
    public async Task Closing_a_thread_records_the_reason_and_refuses_later_messages()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!;

        var response = await client.PatchAsJsonAsync($"/api/v1/threads/{threadId}/close", new { reason = "customer left" });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var thread = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("thread");
        Assert.False(thread.GetProperty("isActive").GetBoolean());
        Assert.Equal("customer left", thread.GetProperty("closedReason").GetString());

        var refused = await client.PostAsJsonAsync($"/api/v1/threads/{threadId}/messages", new { message = "wait" });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("BAD_REQUEST", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
        Assert.Empty(await client.HistoryAsync(threadId));
    }

    [Fact]
    public async Task With_discardInboundSms_a_message_is_stored_and_no_reply_is_sent()
    {
        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "quiet.yaml", TestAgents.EchoAgent(agentId, "Hello!", discardInbound: true));
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents);
        var thread = await server.Client.CreateThreadAsync(agentId);
        Assert.True(thread.GetProperty("agentVersionDetails").GetProperty("discardInboundSms").GetBoolean());
        var threadId = thread.GetProperty("id").GetString()!;

        var sent = await server.Client.SendAsync(threadId, "anyone?");
        Assert.Equal("stored", sent.GetProperty("status").GetString());
        Assert.Equal(0, server.CountRows().Runs);
        var history = await server.Client.HistoryAsync(threadId);
        Assert.Equal("anyone?", Assert.Single(history).GetProperty("messageBody").GetString());
    }

    [Fact]
    public async Task A_changed_agent_file_publishes_a_new_version_and_existing_threads_keep_theirs()
    {
        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "echo.yaml", TestAgents.EchoAgent(agentId, "Version one here."));
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents);
        var client = server.Client;
        var oldThread = (await client.CreateThreadAsync(agentId)).GetProperty("id").GetString()!;

        TestAgents.Write(agents, "echo.yaml", TestAgents.EchoAgent(agentId, "Version two here."));
        JsonElement current = default;
        for (var i = 0; i < 100; i++)
        {
            var list = await client.GetFromJsonAsync<JsonElement>("/api/v1/agents");
            current = list.GetProperty("agents").EnumerateArray().Single(a => a.GetProperty("id").GetString() == agentId.ToString()).GetProperty("currentVersion");
            if (current.GetProperty("version").GetInt32() == 2) break;
            await Task.Delay(100);
        }
        Assert.Equal(2, current.GetProperty("version").GetInt32());

        var newThread = await client.CreateThreadAsync(agentId);
        Assert.Equal(2, newThread.GetProperty("agentVersionDetails").GetProperty("version").GetInt32());

        await using var oldStream = await SseStream.OpenAsync(client, oldThread);
        await client.SendAsync(oldThread, "hi");
        Assert.Equal("Version one here.", (await oldStream.ReadAsync(1))[0].Body());
        var newThreadId = newThread.GetProperty("id").GetString()!;
        await using var newStream = await SseStream.OpenAsync(client, newThreadId);
        await client.SendAsync(newThreadId, "hi");
        Assert.Equal("Version two here.", (await newStream.ReadAsync(1))[0].Body());
    }

    [Fact]
    public async Task Messages_sent_during_a_run_are_answered_in_order_one_run_at_a_time()
    {
        var agents = TestAgents.NewFolder();
        var agentId = Guid.NewGuid();
        TestAgents.Write(agents, "echo.yaml", """
            id: AGENT
            name: Parrot
            mode: FLOW
            flow:
              start: listen
              nodes:
                listen: { type: ask, text: "Say something.", variable: said, next: repeat }
                repeat: { type: say, text: "You said {{said}}.", next: listen }
            """.Replace("AGENT", agentId.ToString()));
        await using var server = await ParleyTestServer.StartAsync(agentsFolder: agents);
        var client = server.Client;
        var threadId = (await client.CreateThreadAsync(agentId)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(client, threadId, events: "all");

        await client.SendAsync(threadId, "start");
        await Task.WhenAll(Enumerable.Range(1, 10).Select(i => client.SendAsync(threadId, $"n{i}")));
        var all = new List<System.Net.ServerSentEvents.SseItem<string>>();
        while (all.Count(e => e.EventType == "run.completed") < 11)
            all.Add((await stream.NextAsync())!.Value);

        // Runs never overlap: every run.started follows the previous run's end.
        var open = 0;
        foreach (var e in all)
        {
            if (e.EventType == "run.started") Assert.Equal(1, ++open);
            if (e.EventType is "run.completed" or "run.failed") open--;
        }
        var inbound = all.Where(e => e.EventType == "message.created" && e.Data.Contains("\"INBOUND\"")).Select(e => e.Json().GetProperty("messageBody").GetString()).Skip(1).ToList();
        var replies = all.Where(e => e.Data.Contains("You said")).Select(e => e.Json().GetProperty("messageBody").GetString()).ToList();
        Assert.Equal(inbound.Select(text => $"You said {text}."), replies);
    }
}
