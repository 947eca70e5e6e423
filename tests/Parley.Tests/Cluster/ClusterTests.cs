using System.Net.ServerSentEvents;
using System.Text;
using Npgsql;
using Parley.Core.Runs;
using Parley.Tests.AgentServer;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Cluster;

/// <summary>
/// Several real Parley processes on one PostgreSQL database and one Redis, as behind a load balancer: a client talks to
/// any node for any call and sees one gap-free conversation; a node killed mid-run and a Redis restart lose nothing.
/// </summary>
public sealed class ClusterTests(PostgresServer postgres, RedisServer redis) : IClassFixture<RedisServer>, IAsyncLifetime
{
    private static readonly Guid SlowAgent = Guid.Parse("c1a55e00-0000-4000-8000-000000000001");
    private readonly List<ParleyNode> _nodes = [];
    private string _agents = "";

    public ValueTask InitializeAsync()
    {
        if (postgres.SkipReason is { } noPostgres) Assert.Skip(noPostgres);
        if (redis.SkipReason is { } noRedis) Assert.Skip(noRedis);
        _agents = TestAgents.NewFolder();
        TestAgents.Write(_agents, "slow.yaml", $"""
            id: {SlowAgent}
            name: Slow streamer
            mode: PROMPT
            model: slow
            instructions: Stream.
            """);
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes) await node.DisposeAsync();
        if (_agents.Length > 0) try { Directory.Delete(_agents, recursive: true); } catch (IOException) { }
    }

    private async Task<(ParleyNode[] Nodes, string Database)> StartClusterAsync(int count, int replyTokens, double tokenDelayMs, params string[] more)
    {
        var database = await postgres.CreateDatabaseAsync();
        string[] settings =
        [
            $"--ConnectionStrings:Postgres={database}", $"--ConnectionStrings:Redis={redis.Configuration}",
            "--Parley:Models:slow:Provider=scripted", $"--Parley:Models:slow:ScriptedTokens={replyTokens}",
            $"--Parley:Models:slow:ScriptedDelayMs={tokenDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            "--Parley:Runs:LeaseSeconds=3", "--Parley:Runs:PollSeconds=0.5",
            .. more, // later keys win
        ];
        // All at once: they migrate the empty database and publish the agent files concurrently.
        var nodes = await Task.WhenAll(Enumerable.Range(1, count).Select(i => ParleyNode.StartAsync($"node{i}", _agents, settings)));
        _nodes.AddRange(nodes);
        return (nodes, database);
    }

    [Fact]
    public async Task A_thread_created_on_one_node_streamed_from_a_second_and_posted_on_a_third_gets_every_event_once_in_order()
    {
        const int tokens = 120;
        var (nodes, _) = await StartClusterAsync(3, tokens, 5);

        var thread = await nodes[0].Client.CreateThreadAsync(SlowAgent);
        var threadId = thread.GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(nodes[1].Client, threadId, events: "all");
        await nodes[2].Client.SendAsync(threadId, "hello from node 3");

        var events = await stream.ReadUntilAsync(e => e.EventType is "run.completed" or "run.failed", timeoutSeconds: 30);

        AssertGapFree(events, from: 1);
        Assert.Equal("run.completed", events[^1].EventType);
        var deltas = events.Where(e => e.EventType == "message.delta").Select(e => e.Json().GetProperty("delta").GetString()).ToList();
        Assert.Equal(tokens, deltas.Count);
        Assert.Equal(ExpectedText(tokens), string.Concat(deltas));
        Assert.Single(events, e => e.EventType == "message.created" && e.Data.Contains("hello from node 3"));
        var reply = Assert.Single(events, e => e.EventType == "message.created" && e.Data.Contains("OUTBOUND"));
        Assert.Equal(ExpectedText(tokens), reply.Body());
        // Every node answers for the thread with the same history.
        foreach (var node in nodes)
            Assert.Equal(2, (await node.Client.HistoryAsync(threadId)).Count);
    }

    [Fact]
    public async Task A_node_killed_in_the_middle_of_a_reply_has_its_run_ended_by_another_node_and_the_thread_goes_on()
    {
        var (nodes, database) = await StartClusterAsync(3, 400, 25); // a 10-second reply
        var thread = await nodes[0].Client.CreateThreadAsync(SlowAgent);
        var threadId = thread.GetProperty("id").GetString()!;
        await using var streamA = await SseStream.OpenAsync(nodes[0].Client, threadId, events: "all");
        await using var streamB = await SseStream.OpenAsync(nodes[1].Client, threadId, events: "all");
        await nodes[2].Client.SendAsync(threadId, "start a long reply");

        var before = await streamA.ReadUntilAsync(e => e.EventType == "message.delta" && e.Json().GetProperty("delta").GetString() == " token20", timeoutSeconds: 30);
        var owner = await LeaseOwnerAsync(database, Guid.Parse(threadId));
        var victim = nodes.Single(n => n.NodeId == owner);
        await victim.KillAsync();
        var survivors = nodes.Where(n => n != victim).ToArray();
        var watching = victim == nodes[0] ? streamB : streamA;
        var seen = victim == nodes[0] ? await streamB.ReadUntilAsync(e => e.EventType == "message.delta" && e.Json().GetProperty("delta").GetString() == " token20", 30) : before;

        // Lease 3 s + poll 0.5 s: the run ends well within this bound, by the documented policy.
        var rest = await watching.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed", timeoutSeconds: 20);
        var all = seen.Concat(rest).ToList();
        AssertGapFree(all, from: 1);
        var failed = rest[^1];
        Assert.Equal("run.failed", failed.EventType);
        Assert.Equal(RunEngine.AbandonedRunError, failed.Json().GetProperty("error").GetString());
        Assert.Single(rest, e => e.EventType == "message.created" && e.Data.Contains("\"FAILED\""));

        // Nothing is left half-written: no run is open, and the thread takes the next message on any node.
        Assert.Equal(0L, await CountAsync(database, "SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'running')"));
        await survivors[0].Client.SendAsync(threadId, "are you there?");
        var next = await watching.ReadUntilAsync(e => e.EventType is "run.failed" or "run.completed", timeoutSeconds: 30);
        Assert.Equal("run.completed", next[^1].EventType);
        AssertGapFree(all.Concat(next).ToList(), from: 1);
    }

    [Fact]
    public async Task A_subscriber_on_another_node_gets_every_event_when_Redis_restarts_in_the_middle_of_a_reply()
    {
        const int tokens = 300;
        var (nodes, _) = await StartClusterAsync(2, tokens, 20); // a 6-second reply
        var thread = await nodes[0].Client.CreateThreadAsync(SlowAgent);
        var threadId = thread.GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(nodes[1].Client, threadId, events: "all");
        await nodes[0].Client.SendAsync(threadId, "keep talking");

        var events = await stream.ReadUntilAsync(e => e.EventType == "message.delta" && e.Json().GetProperty("delta").GetString() == " token30", timeoutSeconds: 30);
        await redis.StopAsync();
        await Task.Delay(1000);
        await redis.StartAsync();
        events.AddRange(await stream.ReadUntilAsync(e => e.EventType is "run.completed" or "run.failed", timeoutSeconds: 60));

        AssertGapFree(events, from: 1);
        Assert.Equal("run.completed", events[^1].EventType);
        Assert.Equal(ExpectedText(tokens), string.Concat(events.Where(e => e.EventType == "message.delta").Select(e => e.Json().GetProperty("delta").GetString())));
    }

    [Fact]
    public async Task An_agent_server_cancel_sent_to_another_node_stops_the_run_where_it_executes()
    {
        var (nodes, database) = await StartClusterAsync(2, 4000, 25); // a 100-second reply: only a cancel ends it in time
        var assistant = SlowAgent.ToString();
        var threadId = await nodes[0].Client.CreateAgentServerThreadAsync();

        // interrupt: the run ends interrupted, its input stays.
        var first = (await nodes[0].Client.CreateRunAsync(threadId, assistant, "first story")).GetProperty("run_id").GetString()!;
        var (executing, other) = await ExecutingNodeAsync(nodes, database, threadId, first);
        await using (var joined = await executing.Client.JoinRunAsync(threadId, first, query: "stream_mode=messages-tuple"))
        {
            await joined.ReadAsync(3); // metadata and the first deltas: the model is streaming on the executing node
            var (status, _) = await other.Client.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/{first}/cancel?wait=1&action=interrupt");
            Assert.Equal(System.Net.HttpStatusCode.NoContent, status);
            Assert.All(await joined.ReadToEndAsync(), e => Assert.Equal("messages", e.EventType)); // its stream ended, without an error
        }
        foreach (var node in nodes)
            Assert.Equal("interrupted", (await node.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{first}")).GetProperty("status").GetString());
        // The partial reply was stored by the engine that streamed it, with the text its deltas carried.
        Assert.Equal(1L, await CountAsync(database, $"SELECT COUNT(*) FROM messages WHERE run_id = '{first}' AND direction = 'OUTBOUND' AND status = 'FAILED' AND body LIKE 'token1 token2%'"));
        var values = (await other.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/state")).GetProperty("values").GetProperty("messages");
        Assert.Equal(["first story"], values.EnumerateArray().Select(m => m.GetProperty("content").GetString()));

        // rollback: the run and its messages are gone on every node; the thread takes the next run.
        var second = (await nodes[1].Client.CreateRunAsync(threadId, assistant, "second story")).GetProperty("run_id").GetString()!;
        (executing, other) = await ExecutingNodeAsync(nodes, database, threadId, second);
        var (rolledBack, _) = await other.Client.SendJsonAsync(HttpMethod.Post, $"/threads/{threadId}/runs/{second}/cancel?wait=1&action=rollback");
        Assert.Equal(System.Net.HttpStatusCode.NoContent, rolledBack);
        foreach (var node in nodes)
        {
            Assert.Equal(System.Net.HttpStatusCode.NotFound, (await node.Client.SendJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs/{second}")).Status);
            Assert.Equal([first], (await node.Client.OkJsonAsync(HttpMethod.Get, $"/threads/{threadId}/runs")).EnumerateArray().Select(r => r.GetProperty("run_id").GetString()));
        }
        Assert.Equal(0L, await CountAsync(database, "SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'running')"));
        // What remains is the interrupted run's: its input and the FAILED reply with the text so far.
        Assert.Equal(0L, await CountAsync(database, $"SELECT COUNT(*) FROM messages WHERE run_id = '{second}'"));
        Assert.Equal(2L, await CountAsync(database, $"SELECT COUNT(*) FROM messages WHERE run_id = '{first}'"));
    }

    [Fact]
    public async Task A_node_with_no_free_run_slot_leaves_a_new_run_to_a_node_that_has_one()
    {
        var quick = Guid.NewGuid();
        TestAgents.Write(_agents, "quick.yaml", $"""
            id: {quick}
            name: Quick
            mode: PROMPT
            model: quick
            instructions: Answer.
            """);
        // One run at a time per node; leases long enough that a claim held while waiting for a slot would stall the run.
        var (nodes, database) = await StartClusterAsync(2, 4000, 25, "--Parley:Runs:MaxConcurrentRuns=1", "--Parley:Runs:LeaseSeconds=60",
            "--Parley:Models:quick:Provider=scripted", "--Parley:Models:quick:ScriptedTokens=3", "--Parley:Models:quick:ScriptedDelayMs=1");
        var busyThread = (await nodes[0].Client.CreateThreadAsync(SlowAgent)).GetProperty("id").GetString()!;
        await using (var busyStream = await SseStream.OpenAsync(nodes[0].Client, busyThread, events: "all"))
        {
            await nodes[0].Client.SendAsync(busyThread, "a 100-second reply");
            await busyStream.ReadUntilAsync(e => e.EventType == "message.delta", timeoutSeconds: 30);
        }
        var owner = await LeaseOwnerAsync(database, Guid.Parse(busyThread));
        var busy = nodes.Single(n => n.NodeId == owner);
        var free = nodes.Single(n => n != busy);

        // Posted on the busy node, which schedules it at once but has no slot: the other node executes it.
        var thread = (await busy.Client.CreateThreadAsync(quick)).GetProperty("id").GetString()!;
        await using var stream = await SseStream.OpenAsync(busy.Client, thread, events: "all");
        await busy.Client.SendAsync(thread, "hello");
        var events = await stream.ReadUntilAsync(e => e.EventType is "run.completed" or "run.failed", timeoutSeconds: 30);

        Assert.Equal("run.completed", events[^1].EventType);
        Assert.Equal(free.NodeId, await ScalarAsync<string>(database, $"SELECT lease_owner FROM runs WHERE thread_id = '{thread}'"));
        Assert.Equal(busy.NodeId, await LeaseOwnerAsync(database, Guid.Parse(busyThread))); // the long reply still runs there
    }

    private static async Task<T> ScalarAsync<T>(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand(sql, connection);
        return (T)(await query.ExecuteScalarAsync())!;
    }

    // Waits until the run executes (bounded), and returns the node whose lease it holds and the other one.
    private static async Task<(ParleyNode Executing, ParleyNode Other)> ExecutingNodeAsync(ParleyNode[] nodes, string database, string threadId, string runId)
    {
        await nodes[1].Client.WaitForRunAsync(threadId, runId, s => s == "running");
        var owner = await LeaseOwnerAsync(database, Guid.Parse(threadId));
        var executing = nodes.Single(n => n.NodeId == owner);
        return (executing, nodes.Single(n => n != executing));
    }

    private static string ExpectedText(int tokens) =>
        string.Concat(Enumerable.Range(1, tokens).Select(i => i == 1 ? $"token{i}" : $" token{i}"));

    private static void AssertGapFree(List<SseItem<string>> events, long from)
    {
        var ids = events.Select(e => long.Parse(e.EventId!)).ToList();
        Assert.Equal(Enumerable.Range((int)from, ids.Count).Select(i => (long)i), ids);
    }

    // The node executing the thread's running run, by its lease.
    private static async Task<string> LeaseOwnerAsync(string database, Guid threadId)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand("SELECT lease_owner FROM runs WHERE thread_id = @thread AND status = 'running'", connection);
        query.Parameters.AddWithValue("thread", threadId);
        return (string)(await query.ExecuteScalarAsync())!;
    }

    private static async Task<long> CountAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var query = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await query.ExecuteScalarAsync());
    }
}
