using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core;
using Parley.Core.Agents;
using Parley.Core.Diagnostics;
using Parley.Core.Events;
using Parley.Core.Organizations;
using Parley.Core.Runs;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Tests.Storage;

/// <summary>One store as a node sees it: the store interfaces on one object, and the bus it publishes to.</summary>
public sealed record StoreUnderTest(
    IOrganizationStore Organizations, IAgentStore Agents, IThreadStore Threads, IPublishableKeyStore PublishableKeys, InProcessThreadEventBus Bus, IAsyncDisposable Owner);

/// <summary>
/// What every store must do, written once and run unchanged against each implementation (STYLE.md: conformance tests
/// shared by the SQLite and PostgreSQL stores). A subclass says how to open a store on a fresh database and how to open
/// a second store on the same database (a second node).
/// </summary>
public abstract class ThreadStoreConformanceTests : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];
    private StoreUnderTest _store = null!;

    protected static ParleyMetrics NewMetrics() =>
        new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());

    /// <summary>Opens a store on a new, empty database.</summary>
    protected abstract Task<StoreUnderTest> OpenNewAsync();

    /// <summary>Opens another store (another node) on the database of <paramref name="first"/>.</summary>
    protected abstract Task<StoreUnderTest> OpenSecondAsync(StoreUnderTest first);

    /// <summary>How many rows of the event log hold <paramref name="threadId"/>'s events, where the store packs several per row; null where it keeps one per event.</summary>
    protected virtual long? CountEventRows(StoreUnderTest store, Guid threadId) => null;

    public virtual async ValueTask InitializeAsync()
    {
        _store = await OpenNewAsync();
        _owned.Add(_store.Owner);
    }

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var owned in _owned) await owned.DisposeAsync();
    }

    private IThreadStore Threads => _store.Threads;

    private async Task<(Organization Organization, Agent Agent, AgentVersion Version)> SeedAsync(StoreUnderTest? store = null)
    {
        store ??= _store;
        var organization = await store.Organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), "Acme", DateTimeOffset.UtcNow));
        var (agent, version, _) = await store.Agents.PublishAsync(organization.Id, Guid.NewGuid(), new AgentDefinition { Name = "Echo" }, "hash-1");
        return (organization, agent, version);
    }

    private static ThreadChange NewThread(Organization organization, Agent agent, AgentVersion version, int windowSeconds = 3600)
    {
        var now = DateTimeOffset.UtcNow;
        var thread = new ChatThread
        {
            Id = Guid.CreateVersion7(),
            OrganizationId = organization.Id,
            AgentId = agent.Id,
            AgentVersionId = version.Id,
            Metadata = new Dictionary<string, string> { ["source"] = "test" },
            Variables = new Dictionary<string, string> { ["name"] = "Ada" },
            CreatedAt = now,
            UpdatedAt = now,
            WindowExpiresAt = now.AddSeconds(windowSeconds),
        };
        var change = new ThreadChange(thread, now);
        change.AppendRaw(ThreadEventTypes.ThreadCreated, null, "{}");
        return change;
    }

    private async Task<ChatThread> CreateThreadAsync(int windowSeconds = 3600)
    {
        var (organization, agent, version) = await SeedAsync();
        var change = NewThread(organization, agent, version, windowSeconds);
        await Threads.CreateThreadAsync(change);
        return change.Thread;
    }

    private static void AssertCloseTime(DateTimeOffset expected, DateTimeOffset? actual) =>
        Assert.InRange((actual!.Value - expected).Duration(), TimeSpan.Zero, TimeSpan.FromMilliseconds(1));

    [Fact]
    public async Task A_created_thread_reads_back_with_its_fields_and_first_event()
    {
        var created = await CreateThreadAsync();

        var read = await Threads.GetThreadAsync(created.Id);

        Assert.NotNull(read);
        Assert.Equal(created.OrganizationId, read.OrganizationId);
        Assert.Equal(created.AgentVersionId, read.AgentVersionId);
        Assert.Equal("test", read.Metadata["source"]);
        Assert.Equal("Ada", read.Variables["name"]);
        Assert.Equal(ChatThreadState.AgentControl, read.State.Control);
        Assert.True(read.IsActive);
        Assert.Equal(1, read.LastSequence);
        AssertCloseTime(created.WindowExpiresAt, read.WindowExpiresAt);
        var events = await Threads.ReadEventsAsync(created.Id, 0, 10);
        Assert.Equal(ThreadEventTypes.ThreadCreated, Assert.Single(events).Type);
        Assert.Null(await Threads.GetThreadAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task Updates_append_events_with_the_next_sequence_numbers_and_read_back_in_pages_and_a_negative_page_size_is_refused()
    {
        var thread = await CreateThreadAsync();
        for (var i = 0; i < 5; i++)
            await Threads.UpdateThreadAsync(thread.Id, change =>
            {
                change.AppendRaw(ThreadEventTypes.MessageDelta, null, $$"""{"i":{{i}}}""");
                change.AppendRaw(ThreadEventTypes.MessageDelta, null, $$"""{"i":{{i}},"second":true}""");
                return true;
            });

        var all = await Threads.ReadEventsAsync(thread.Id, 0, 100);
        Assert.Equal(Enumerable.Range(1, 11).Select(i => (long)i), all.Select(e => e.Sequence));
        Assert.Equal("""{"i":4,"second":true}""", all[^1].Data);
        var page = await Threads.ReadEventsAsync(thread.Id, 4, 3);
        Assert.Equal([5L, 6L, 7L], page.Select(e => e.Sequence));
        Assert.Empty(await Threads.ReadEventsAsync(thread.Id, 4, 0));
        var negative = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Threads.ReadEventsAsync(thread.Id, 4, -1));
        Assert.Equal("limit", negative.ParamName);
        Assert.Equal(11, (await Threads.GetThreadAsync(thread.Id))!.LastSequence);
    }

    [Fact]
    public async Task A_decision_that_throws_writes_nothing_and_an_empty_change_changes_nothing()
    {
        var thread = await CreateThreadAsync();

        await Assert.ThrowsAsync<ParleyException>(() => Threads.UpdateThreadAsync<bool>(thread.Id, change =>
        {
            change.AddMessage(Message(change, thread, "lost"));
            throw ParleyException.BadRequest("no");
        }));
        var unchanged = await Threads.UpdateThreadAsync(thread.Id, change => change.Thread.LastSequence);

        Assert.Equal(1, unchanged);
        Assert.Single(await Threads.ReadEventsAsync(thread.Id, 0, 10));
        Assert.Empty(await Threads.ListMessagesAsync(thread.Id, 0, 10));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => Threads.UpdateThreadAsync(Guid.NewGuid(), _ => true));
    }

    [Fact]
    public async Task Messages_are_stored_with_their_sequence_and_listed_in_order()
    {
        var thread = await CreateThreadAsync();
        var first = await Threads.UpdateThreadAsync(thread.Id, change => change.AddMessage(Message(change, thread, "hello")));
        var second = await Threads.UpdateThreadAsync(thread.Id, change => change.AddMessage(Message(change, thread, "again") with
        {
            Direction = MessageDirection.OUTBOUND,
            Status = MessageStatus.SENT,
            QuickReplies = ["yes", "no"],
            Usage = new Core.Models.TokenUsage(12, 34),
        }));

        var listed = await Threads.ListMessagesAsync(thread.Id, 0, 10);
        Assert.Equal(["hello", "again"], listed.Select(m => m.MessageBody));
        Assert.Equal([2L, 3L], listed.Select(m => m.Sequence));
        Assert.Equal(["again"], (await Threads.ListMessagesAsync(thread.Id, first.Sequence, 10)).Select(m => m.MessageBody));
        var read = await Threads.GetMessageAsync(second.Id);
        Assert.NotNull(read);
        Assert.Equal(thread.OrganizationId, read.OrganizationId);
        Assert.Equal(["yes", "no"], read.QuickReplies);
        Assert.Equal(new Core.Models.TokenUsage(12, 34), read.Usage);
        Assert.Equal(MessageStatus.SENT, read.Status);
    }

    [Fact]
    public async Task Messages_are_listed_newest_first_before_a_sequence_in_pages()
    {
        var thread = await CreateThreadAsync();
        foreach (var text in new[] { "one", "two", "three", "four", "five" })
            await Threads.UpdateThreadAsync(thread.Id, change => change.AddMessage(Message(change, thread, text)));
        var other = await CreateThreadAsync();
        await Threads.UpdateThreadAsync(other.Id, change => change.AddMessage(Message(change, other, "elsewhere")));

        var newest = await Threads.ListMessagesBeforeAsync(thread.Id, long.MaxValue, 2);
        Assert.Equal(["five", "four"], newest.Select(m => m.MessageBody));
        var next = await Threads.ListMessagesBeforeAsync(thread.Id, newest[^1].Sequence, 2);
        Assert.Equal(["three", "two"], next.Select(m => m.MessageBody));
        var last = await Threads.ListMessagesBeforeAsync(thread.Id, next[^1].Sequence, 2);
        Assert.Equal(["one"], last.Select(m => m.MessageBody));
        Assert.Empty(await Threads.ListMessagesBeforeAsync(thread.Id, last[0].Sequence, 2));
    }

    [Fact]
    public async Task Runs_are_inserted_then_updated_and_the_oldest_pending_one_comes_next()
    {
        var thread = await CreateThreadAsync();
        var runs = new List<Run>();
        for (var i = 0; i < 3; i++)
            runs.Add(await Threads.UpdateThreadAsync(thread.Id, change => change.SaveRun(
                new Run(Guid.CreateVersion7(), thread.Id, thread.OrganizationId, thread.AgentVersionId!.Value, null, RunStatus.pending, change.Now, null, null, null),
                ThreadEventTypes.RunQueued)));

        Assert.Equal(runs[0].Id, (await Threads.GetNextPendingRunAsync(thread.Id))!.Id);
        runs[0] = await Threads.UpdateThreadAsync(thread.Id, change => change.SaveRun(runs[0] with { Status = RunStatus.running, StartedAt = change.Now }, ThreadEventTypes.RunStarted));
        Assert.Equal(runs[1].Id, (await Threads.GetNextPendingRunAsync(thread.Id))!.Id);
        var unfinished = (await Threads.ListUnfinishedRunsAsync()).Where(r => r.ThreadId == thread.Id).ToList();
        Assert.Equal(runs.Select(r => r.Id), unfinished.Select(r => r.Id));

        await Threads.UpdateThreadAsync(thread.Id, change => change.SaveRun(
            runs[0] with { Status = RunStatus.error, EndedAt = change.Now, Error = "boom", Usage = new Core.Models.TokenUsage(5, 7) }, ThreadEventTypes.RunFailed));
        var ended = await Threads.GetRunAsync(runs[0].Id);
        Assert.Equal(RunStatus.error, ended!.Status);
        Assert.Equal("boom", ended.Error);
        Assert.NotNull(ended.StartedAt);
        Assert.NotNull(ended.EndedAt);
        var usage = await Threads.GetOrganizationUsageAsync(thread.OrganizationId, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue);
        Assert.Equal(1, usage.Runs);
        Assert.Equal(new Core.Models.TokenUsage(5, 7), usage.Usage);
    }

    [Fact]
    public async Task Threads_whose_window_ran_out_are_listed_until_closed()
    {
        var expiring = await CreateThreadAsync(windowSeconds: 1);
        var open = await CreateThreadAsync(windowSeconds: 3600);
        var later = DateTimeOffset.UtcNow.AddSeconds(30);

        var expired = await Threads.ListExpiredThreadsAsync(later, 1000);
        Assert.Contains(expiring.Id, expired);
        Assert.DoesNotContain(open.Id, expired);

        await Threads.UpdateThreadAsync(expiring.Id, change => { change.Close("window_expired"); return true; });
        Assert.DoesNotContain(expiring.Id, await Threads.ListExpiredThreadsAsync(later, 1000));
        var closed = await Threads.GetThreadAsync(expiring.Id);
        Assert.False(closed!.IsActive);
        Assert.Equal("window_expired", closed.ClosedReason);
        Assert.NotNull(closed.ClosedAt);
    }

    [Fact]
    public async Task A_commit_is_published_to_the_bus_once_in_order()
    {
        var thread = await CreateThreadAsync();
        using var subscription = _store.Bus.Subscribe(thread.Id);

        await Threads.UpdateThreadAsync(thread.Id, change =>
        {
            change.AppendRaw(ThreadEventTypes.MessageDelta, null, "{}");
            change.AppendRaw(ThreadEventTypes.MessageDelta, null, "{}");
            return true;
        });
        await Threads.UpdateThreadAsync(thread.Id, change => false); // nothing to publish

        var received = new List<long>();
        while (subscription.Reader.TryRead(out var e)) received.Add(e.Sequence);
        Assert.Equal([2L, 3L], received);
    }

    [Fact]
    public async Task A_watcher_finds_the_first_matching_event_stored_or_appended_later_and_its_subscription_queues_no_other()
    {
        var thread = await CreateThreadAsync();
        var watcher = new ThreadEventWatcher(Threads, _store.Bus);
        static bool IsCancelRequest(ThreadEvent e) => e.Type == ThreadEventTypes.RunCancelRequested;
        Task AppendAsync(string type) => Threads.UpdateThreadAsync(thread.Id, change => { change.AppendRaw(type, null, "{}"); return true; });
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // Stored before the watch began: found by its read of the store.
        await AppendAsync(ThreadEventTypes.MessageDelta); // 2
        await AppendAsync(ThreadEventTypes.RunCancelRequested); // 3
        Assert.Equal(3, (await watcher.WaitForAsync(thread.Id, 1, IsCancelRequest, timeout.Token))?.Sequence);

        // Appended while it waits, after many other events: found live, and only the match.
        var waiting = watcher.WaitForAsync(thread.Id, 3, IsCancelRequest, timeout.Token);
        for (var i = 0; i < 50; i++) await AppendAsync(ThreadEventTypes.MessageDelta); // 4–53
        await AppendAsync(ThreadEventTypes.RunCancelRequested); // 54
        Assert.Equal(54, (await waiting)?.Sequence);

        // A subscription that accepts one kind of event is offered the others but queues none of them.
        using var subscription = _store.Bus.Subscribe(thread.Id);
        subscription.Accepts = IsCancelRequest;
        await AppendAsync(ThreadEventTypes.MessageDelta); // 55
        await AppendAsync(ThreadEventTypes.RunCancelRequested); // 56
        var queued = new List<long>();
        while (subscription.Reader.TryRead(out var e)) queued.Add(e.Sequence);
        Assert.Equal([56L], queued);

        // Cancelled while nothing matches: the wait ends with nothing found, without an exception; a wait whose token
        // is already cancelled returns null at once, even with a match stored.
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var ended = watcher.WaitForAsync(thread.Id, 56, IsCancelRequest, cancel.Token);
        await AppendAsync(ThreadEventTypes.MessageDelta); // 57
        Assert.Null(await ended.WaitAsync(timeout.Token));
        await AppendAsync(ThreadEventTypes.RunCancelRequested); // 58
        Assert.Null(await watcher.WaitForAsync(thread.Id, 56, IsCancelRequest, cancel.Token));
    }

    [Fact]
    public async Task A_watch_ends_whenever_it_is_cancelled_even_while_it_reads_the_store()
    {
        // A run's watch is cancelled when the run ends, at any point of the watch: a cancellation that lands between its
        // read of the store and its wait must still end it (a run whose watch never ended never wrote its end).
        var thread = await CreateThreadAsync();
        var watcher = new ThreadEventWatcher(Threads, _store.Bus);
        var random = new Random(7);
        for (var i = 0; i < 300; i++)
        {
            using var cancel = new CancellationTokenSource();
            var waiting = Task.Run(() => watcher.WaitForAsync(thread.Id, 1, e => e.Type == ThreadEventTypes.RunCancelRequested, cancel.Token));
            var spin = random.Next(0, 20_000);
            for (var s = 0; s < spin; s++) Thread.SpinWait(1);
            await cancel.CancelAsync();
            try
            {
                Assert.Null(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                // cancelled inside the read of the store: the documented exception
            }
        }
    }

    [Fact]
    public async Task A_log_read_for_an_sse_stream_ends_quietly_when_cancelled_and_any_other_read_throws()
    {
        // An SSE stream's client leaving is its normal end: its read ends without an exception (one fewer per closed
        // stream); a read for anything else still reports the cancellation.
        var thread = await CreateThreadAsync();
        var reader = new ThreadEventReader(Threads, _store.Bus);
        foreach (var sse in new[] { true, false })
        {
            using var cancel = new CancellationTokenSource();
            var items = new List<ThreadStreamItemKind>();
            async Task ReadAsync()
            {
                await foreach (var item in reader.ReadAsync(thread.Id, 0, TimeSpan.FromMinutes(1), endWhenStopping: sse, cancel.Token))
                {
                    items.Add(item.Kind);
                    if (item.Kind == ThreadStreamItemKind.Flush) await cancel.CancelAsync(); // the replay is done: live phase
                }
            }
            if (sse) await ReadAsync().WaitAsync(TimeSpan.FromSeconds(10));
            else await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ReadAsync().WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal([ThreadStreamItemKind.Event, ThreadStreamItemKind.Flush], items);
        }
    }

    [Fact]
    public async Task A_watcher_over_a_bus_that_lost_the_event_finds_it_in_the_store_at_its_periodic_check()
    {
        var thread = await CreateThreadAsync();
        var watcher = new ThreadEventWatcher(Threads, new SilentBus(), Microsoft.Extensions.Options.Options.Create(new ThreadEventReaderOptions { CheckStoreWhenIdle = true }));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var waiting = watcher.WaitForAsync(thread.Id, 1, e => e.Type == ThreadEventTypes.RunCancelRequested, timeout.Token);
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        await Threads.UpdateThreadAsync(thread.Id, change => { change.AppendRaw(ThreadEventTypes.RunCancelRequested, null, "{}"); return true; }); // 2

        var found = await waiting.WaitAsync(ThreadEventWatcher.StoreCheckInterval * 3, timeout.Token);
        Assert.Equal(2, found?.Sequence);
    }

    /// <summary>A bus that loses every message: subscriptions are never offered anything.</summary>
    private sealed class SilentBus : IThreadEventBus
    {
        public ThreadEventSubscription Subscribe(Guid threadId) => new(threadId, _ => { });
        public void Publish(IReadOnlyList<ThreadEvent> events) { }
    }

    [Fact]
    public async Task Concurrent_appends_to_one_thread_get_gap_free_unique_sequences()
    {
        var thread = await CreateThreadAsync();
        const int writers = 16, writesEach = 10;

        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < writesEach; i++)
                await Threads.UpdateThreadAsync(thread.Id, change =>
                {
                    change.AppendRaw(ThreadEventTypes.MessageDelta, null, $$"""{"w":{{w}},"i":{{i}}}""");
                    return true;
                });
        })));

        await AssertGapFreeAsync(Threads, thread.Id, 1 + writers * writesEach);
    }

    [Fact]
    public async Task A_writes_deltas_read_back_one_event_each_from_any_point_in_pages_that_end_anywhere_on_every_node()
    {
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var thread = await CreateThreadAsync();
        var run = Guid.NewGuid();
        // 600 deltas in one write (more than a packed row holds), one whose data has a line break, then another event
        // type, then a delta again: sequences 2–603 after the thread's creation.
        static string Data(int i) => i == 300 ? "{\"delta\":\n\"line\"}" : $$"""{"delta":"{{i}} é😀"}""";
        await Threads.UpdateThreadAsync(thread.Id, change =>
        {
            for (var i = 0; i < 600; i++) change.AppendRaw(ThreadEventTypes.MessageDelta, run, Data(i));
            change.AppendRaw(ThreadEventTypes.ToolCall, run, "{}");
            change.AppendRaw(ThreadEventTypes.MessageDelta, run, """{"delta":"after"}""");
            return true;
        });

        var expected = new List<(long, string, string)> { (1, ThreadEventTypes.ThreadCreated, "{}") };
        expected.AddRange(Enumerable.Range(0, 600).Select(i => (i + 2L, ThreadEventTypes.MessageDelta, Data(i))));
        expected.Add((602, ThreadEventTypes.ToolCall, "{}"));
        expected.Add((603, ThreadEventTypes.MessageDelta, """{"delta":"after"}"""));
        foreach (var node in new[] { Threads, second.Threads })
        {
            Assert.Equal(603, (await node.GetThreadAsync(thread.Id))!.LastSequence);
            var all = await node.ReadEventsAsync(thread.Id, 0, 1000);
            Assert.Equal(expected, all.Select(e => (e.Sequence, e.Type, e.Data)));
            Assert.All(all.Skip(1), e => Assert.Equal(run, e.RunId));
            foreach (var after in new long[] { 0, 1, 2, 3, 150, 256, 257, 258, 300, 301, 302, 303, 559, 560, 601, 602, 603 })
            {
                var page = await node.ReadEventsAsync(thread.Id, after, 7);
                Assert.Equal(expected.Where(x => x.Item1 > after).Take(7), page.Select(e => (e.Sequence, e.Type, e.Data)));
            }
            // Read to the end in pages of 5, as a replay does: every event once, in order.
            var paged = new List<long>();
            for (long last = 0; ;)
            {
                var page = await node.ReadEventsAsync(thread.Id, last, 5);
                if (page.Count == 0) break;
                paged.AddRange(page.Select(e => e.Sequence));
                last = page[^1].Sequence;
            }
            Assert.Equal(expected.Select(x => x.Item1), paged);
        }
        // A store that packs deltas: the thread's creation, 256 + 44 deltas, the one with the line break alone,
        // 256 + 43, the tool call and the last delta.
        if (CountEventRows(_store, thread.Id) is { } rows) Assert.Equal(8, rows);

        // A write of deltas only, of two runs: each event keeps its run, and the thread's last sequence (which such a
        // write leaves out of the thread's row in SQLite) is its last event's on both nodes.
        var next = Guid.NewGuid();
        await Threads.UpdateThreadAsync(thread.Id, change =>
        {
            for (var i = 0; i < 5; i++) change.AppendRaw(ThreadEventTypes.MessageDelta, i < 2 ? run : next, $$"""{"delta":"tail {{i}}"}""");
            return true;
        });
        foreach (var node in new[] { Threads, second.Threads })
        {
            Assert.Equal(608, (await node.GetThreadAsync(thread.Id))!.LastSequence);
            var tail = await node.ReadEventsAsync(thread.Id, 603, 10);
            Assert.Equal([run, run, next, next, next], tail.Select(e => e.RunId));
            Assert.Equal("""{"delta":"tail 4"}""", tail[^1].Data);
        }
        if (CountEventRows(_store, thread.Id) is { } allRows) Assert.Equal(10, allRows); // one row per run
        Assert.Equal(609, await second.Threads.UpdateThreadAsync(thread.Id, change => change.AppendRaw(ThreadEventTypes.MessageDelta, next, "{}").Sequence));
    }

    [Fact]
    public async Task A_replys_deltas_leave_the_threads_updated_time_its_message_moves_it_and_every_node_reads_the_last_sequence()
    {
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var thread = await CreateThreadAsync();
        var created = (await second.Threads.GetThreadAsync(thread.Id))!.UpdatedAt; // as stored (PostgreSQL keeps microseconds)
        for (var i = 0; i < 3; i++)
            await Threads.UpdateThreadAsync(thread.Id, change =>
            {
                change.AppendRaw(ThreadEventTypes.MessageDelta, null, "{\"delta\":\"" + i + "\"}");
                return true;
            });

        // Read here (a store may keep the thread it wrote) and on the other node (from the database).
        foreach (var node in new[] { Threads, second.Threads })
        {
            var streaming = (await node.GetThreadAsync(thread.Id))!;
            Assert.Equal(4, streaming.LastSequence);
            Assert.Equal(created, streaming.UpdatedAt);
        }
        Assert.Equal(5, await second.Threads.UpdateThreadAsync(thread.Id, change => change.AppendRaw(ThreadEventTypes.MessageDelta, null, "{}").Sequence));
        Assert.Equal(5, (await Threads.GetThreadAsync(thread.Id))!.LastSequence); // the other node's delta, read here

        await Task.Delay(20, TestContext.Current.CancellationToken); // the clock moves past the thread's creation
        await Threads.UpdateThreadAsync(thread.Id, change => { change.AddMessage(Message(change, thread, "the reply")); return true; });
        foreach (var node in new[] { Threads, second.Threads })
        {
            var replied = (await node.GetThreadAsync(thread.Id))!;
            Assert.Equal(6, replied.LastSequence);
            Assert.True(replied.UpdatedAt > created, $"updatedAt {replied.UpdatedAt:O} did not move past {created:O}");
        }

        // The row and this node's kept thread agree now (6); a delta the other node appends leaves the row as it is.
        await second.Threads.UpdateThreadAsync(thread.Id, change => change.AppendRaw(ThreadEventTypes.MessageDelta, null, "{}"));
        Assert.Equal(7, (await Threads.GetThreadAsync(thread.Id))!.LastSequence);
    }

    [Fact]
    public async Task Two_nodes_appending_to_one_thread_at_once_get_gap_free_unique_sequences()
    {
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var thread = await CreateThreadAsync();
        const int writersPerNode = 8, writesEach = 10;

        await Task.WhenAll(new[] { _store, second }.SelectMany(node => Enumerable.Range(0, writersPerNode).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < writesEach; i++)
                await node.Threads.UpdateThreadAsync(thread.Id, change =>
                {
                    change.AddMessage(Message(change, thread, $"{w}/{i}"));
                    return true;
                });
        }))));

        await AssertGapFreeAsync(second.Threads, thread.Id, 1 + 2 * writersPerNode * writesEach);
        var messages = await Threads.ListMessagesAsync(thread.Id, 0, 1000);
        Assert.Equal(2 * writersPerNode * writesEach, messages.Count);
        Assert.Equal(messages.Count, messages.Select(m => m.Sequence).Distinct().Count());
    }

    [Fact]
    public async Task A_node_reads_a_thread_as_another_node_last_wrote_it_even_after_a_delete_and_a_new_thread_with_the_same_id()
    {
        // A store may keep threads it wrote in memory (SQLite): what another node wrote since must win.
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var (organization, agent, version) = await SeedAsync();
        var created = NewThread(organization, agent, version);
        await Threads.CreateThreadAsync(created);
        var thread = created.Thread;
        await Threads.UpdateThreadAsync(thread.Id, change => { change.AddMessage(Message(change, thread, "first")); return true; });
        Assert.Equal(2, (await Threads.GetThreadAsync(thread.Id))!.LastSequence);

        await second.Threads.UpdateThreadAsync(thread.Id, change => { change.Close("by the other node"); return true; });
        var read = await Threads.GetThreadAsync(thread.Id);
        Assert.False(read!.IsActive);
        Assert.Equal("by the other node", read.ClosedReason);
        Assert.False(await Threads.UpdateThreadAsync(thread.Id, change => change.Thread.IsActive)); // the write sees it too

        // Deleted there and created again with the same id (the agent-server API lets clients choose thread ids).
        await second.Threads.DeleteThreadAsync(thread.Id);
        Assert.Null(await Threads.GetThreadAsync(thread.Id));
        var again = NewThread(organization, agent, version);
        again = new ThreadChange(again.Thread with { Id = thread.Id, LastSequence = 0, Variables = new Dictionary<string, string> { ["name"] = "Grace" } }, again.Now);
        again.AppendRaw(ThreadEventTypes.ThreadCreated, null, "{}");
        await second.Threads.CreateThreadAsync(again);
        var reborn = await Threads.GetThreadAsync(thread.Id);
        Assert.True(reborn!.IsActive);
        Assert.Equal("Grace", reborn.Variables["name"]);
        Assert.Equal(1, reborn.LastSequence);
        Assert.Equal(2, await Threads.UpdateThreadAsync(thread.Id, change => change.AppendRaw("test.event", null, "{}").Sequence));
    }

    [Fact]
    public async Task Organizations_and_keys_are_created_once_and_found_by_hash_unless_revoked()
    {
        var id = Guid.NewGuid();
        var first = await _store.Organizations.EnsureOrganizationAsync(new Organization(id, "First", DateTimeOffset.UtcNow));
        var again = await _store.Organizations.EnsureOrganizationAsync(new Organization(id, "Renamed", DateTimeOffset.UtcNow));
        Assert.Equal("First", again.Name);
        Assert.Equal(first.Id, (await _store.Organizations.GetOrganizationAsync(id))!.Id);
        await _store.Organizations.SetTokenBudgetAsync(id, 1000);
        Assert.Equal(1000, (await _store.Organizations.GetOrganizationAsync(id))!.TokenBudget);

        var key = ApiKeyHasher.Generate();
        var agentId = Guid.NewGuid();
        await _store.Organizations.AddApiKeyAsync(new ApiKey(Guid.NewGuid(), id, "ci", ApiKeyHasher.Hash(key), DateTimeOffset.UtcNow, null, agentId, 60));
        await _store.Organizations.AddApiKeyAsync(new ApiKey(Guid.NewGuid(), id, "ci", ApiKeyHasher.Hash(key), DateTimeOffset.UtcNow, null)); // same hash: ignored
        var revoked = ApiKeyHasher.Generate();
        await _store.Organizations.AddApiKeyAsync(new ApiKey(Guid.NewGuid(), id, "old", ApiKeyHasher.Hash(revoked), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow));

        var found = await _store.Organizations.FindApiKeyByHashAsync(ApiKeyHasher.Hash(key));
        Assert.Equal(id, found!.OrganizationId);
        Assert.Equal(agentId, found.AgentId);
        Assert.Equal(60, found.RequestsPerMinute);
        Assert.Null(await _store.Organizations.FindApiKeyByHashAsync(ApiKeyHasher.Hash(revoked)));
        Assert.Null(await _store.Organizations.FindApiKeyByHashAsync(ApiKeyHasher.Hash(ApiKeyHasher.Generate())));
    }

    [Fact]
    public async Task A_budget_and_usage_written_by_another_node_reach_this_nodes_budget_check()
    {
        // The SQLite store keeps organizations it read for up to 1 s (docs/operations.md): its next write notices another
        // connection's commit and drops them, and without a write of its own the entry expires.
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var (organization, agent, version) = await SeedAsync();
        Assert.Null((await _store.Organizations.GetOrganizationAsync(organization.Id))!.TokenBudget);

        await second.Organizations.SetTokenBudgetAsync(organization.Id, 50);
        var created = NewThread(organization, agent, version);
        await Threads.CreateThreadAsync(created);
        Assert.Equal(50, (await _store.Organizations.GetOrganizationAsync(organization.Id))!.TokenBudget);

        var thread = created.Thread;
        await second.Threads.UpdateThreadAsync(thread.Id, change => change.SaveRun(
            new Run(Guid.CreateVersion7(), thread.Id, thread.OrganizationId, version.Id, null, RunStatus.success, change.Now, change.Now, change.Now, null, new(30, 40)),
            ThreadEventTypes.RunCompleted));
        var used = 0L;
        for (var i = 0; i < 200 && used != 70; i++)
        {
            used = (await _store.Organizations.GetOrganizationAsync(organization.Id))!.TokensUsed;
            if (used != 70) await Task.Delay(50);
        }
        Assert.Equal(70, used);
    }

    [Fact]
    public async Task The_organizations_running_token_total_follows_its_runs_usage_updates_rollbacks_and_deleted_threads()
    {
        var (organization, agent, version) = await SeedAsync();
        var (other, otherAgent, otherVersion) = await SeedAsync();
        async Task<long> UsedAsync(Guid id) => (await _store.Organizations.GetOrganizationAsync(id))!.TokensUsed;
        async Task<long> SummedAsync(Guid id) =>
            (await Threads.GetOrganizationUsageAsync(id, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue)).Usage.TotalTokens;
        Run NewRun(ChatThread thread, ThreadChange change, Core.Models.TokenUsage? usage) =>
            new(Guid.CreateVersion7(), thread.Id, thread.OrganizationId, thread.AgentVersionId!.Value, null, RunStatus.success, change.Now, change.Now, change.Now, null, usage);

        var first = NewThread(organization, agent, version);
        await Threads.CreateThreadAsync(first);
        var second = NewThread(organization, agent, version);
        await Threads.CreateThreadAsync(second);
        var elsewhere = NewThread(other, otherAgent, otherVersion);
        await Threads.CreateThreadAsync(elsewhere);
        Assert.Equal(0, await UsedAsync(organization.Id));

        // Inserted with usage, inserted without, then its usage set and raised (an update of the same run).
        var a = await Threads.UpdateThreadAsync(first.Thread.Id, change => change.SaveRun(NewRun(first.Thread, change, new(5, 7)), ThreadEventTypes.RunCompleted));
        var b = await Threads.UpdateThreadAsync(second.Thread.Id, change => change.SaveRun(NewRun(second.Thread, change, null), ThreadEventTypes.RunCompleted));
        await Threads.UpdateThreadAsync(elsewhere.Thread.Id, change => change.SaveRun(NewRun(elsewhere.Thread, change, new(100, 100)), ThreadEventTypes.RunCompleted));
        Assert.Equal(12, await UsedAsync(organization.Id));
        await Threads.UpdateThreadAsync(second.Thread.Id, change => change.SaveRun(b with { Usage = new(1, 2) }, ThreadEventTypes.RunCompleted));
        await Threads.UpdateThreadAsync(second.Thread.Id, change => change.SaveRun(b with { Usage = new(10, 20) }, ThreadEventTypes.RunCompleted));
        Assert.Equal(42, await UsedAsync(organization.Id));
        Assert.Equal(await SummedAsync(organization.Id), await UsedAsync(organization.Id));

        // A rolled-back run and a deleted thread no longer count, as in the sum of the organization's runs.
        await Threads.UpdateThreadAsync(first.Thread.Id, change => { change.RollBackRun(a); return true; });
        Assert.Equal(30, await UsedAsync(organization.Id));
        await Threads.DeleteThreadAsync(second.Thread.Id);
        Assert.Equal(0, await UsedAsync(organization.Id));
        Assert.Equal(await SummedAsync(organization.Id), await UsedAsync(organization.Id));
        Assert.Equal(200, await UsedAsync(other.Id));
        Assert.Equal(await SummedAsync(other.Id), await UsedAsync(other.Id));
    }

    [Fact]
    public async Task A_revoked_key_is_not_found_from_the_moment_the_revocation_returns()
    {
        var organization = await _store.Organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), "Acme", DateTimeOffset.UtcNow));
        var other = await _store.Organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), "Other", DateTimeOffset.UtcNow));
        var hash = ApiKeyHasher.Hash(ApiKeyHasher.Generate());
        var key = new ApiKey(Guid.NewGuid(), organization.Id, "ci", hash, DateTimeOffset.UtcNow, null);
        await _store.Organizations.AddApiKeyAsync(key);
        for (var i = 0; i < 3; i++) Assert.Equal(key.Id, (await _store.Organizations.FindApiKeyByHashAsync(hash))!.Id); // found, and kept in memory

        Assert.False(await _store.Organizations.RevokeApiKeyAsync(other.Id, key.Id, DateTimeOffset.UtcNow)); // not the other organization's key
        Assert.NotNull(await _store.Organizations.FindApiKeyByHashAsync(hash));
        Assert.False(await _store.Organizations.RevokeApiKeyAsync(organization.Id, Guid.NewGuid(), DateTimeOffset.UtcNow));

        Assert.True(await _store.Organizations.RevokeApiKeyAsync(organization.Id, key.Id, DateTimeOffset.UtcNow));
        Assert.Null(await _store.Organizations.FindApiKeyByHashAsync(hash));
        Assert.True(await _store.Organizations.RevokeApiKeyAsync(organization.Id, key.Id, DateTimeOffset.UtcNow)); // still revoked
        Assert.Null(await _store.Organizations.FindApiKeyByHashAsync(hash));
    }

    [Fact]
    public async Task Publishing_an_agent_adds_a_version_only_when_its_content_changed()
    {
        var organization = await _store.Organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), "Acme", DateTimeOffset.UtcNow));
        var other = await _store.Organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), "Other", DateTimeOffset.UtcNow));
        var agentId = Guid.NewGuid();

        var v1 = await _store.Agents.PublishAsync(organization.Id, agentId, new AgentDefinition { Name = "Bot", Description = "first" }, "h1");
        var same = await _store.Agents.PublishAsync(organization.Id, agentId, new AgentDefinition { Name = "Bot", Description = "first" }, "h1");
        var v2 = await _store.Agents.PublishAsync(organization.Id, agentId, new AgentDefinition { Name = "Bot 2", WindowSeconds = 60 }, "h2");

        Assert.True(v1.Published);
        Assert.False(same.Published);
        Assert.Equal(v1.Version.Id, same.Version.Id);
        Assert.Equal(2, v2.Version.Version);
        Assert.Equal(60, (await _store.Agents.GetAgentVersionAsync(v2.Version.Id))!.Definition.WindowSeconds);
        Assert.Equal("first", (await _store.Agents.GetAgentVersionAsync(v1.Version.Id))!.Definition.Description);
        var listed = Assert.Single(await _store.Agents.ListAgentsAsync(organization.Id));
        Assert.Equal("Bot 2", listed.Agent.Name);
        Assert.Equal(v2.Version.Id, listed.Version.Id);
        Assert.Equal(v2.Version.Id, (await _store.Agents.GetAgentAsync(agentId))!.CurrentVersionId);
        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.Agents.PublishAsync(other.Id, agentId, new AgentDefinition { Name = "Stolen" }, "h3"));
        Assert.Empty(await _store.Agents.ListAgentsAsync(other.Id));
    }

    [Fact]
    public async Task Two_nodes_publishing_the_same_agent_at_once_create_one_version()
    {
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var organization = await _store.Organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), "Acme", DateTimeOffset.UtcNow));
        await second.Organizations.EnsureOrganizationAsync(organization);
        var agentId = Guid.NewGuid();

        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Task.Run(() =>
            (i % 2 == 0 ? _store : second).Agents.PublishAsync(organization.Id, agentId, new AgentDefinition { Name = "Bot" }, "same"))));

        Assert.Single(results, r => r.Published);
        Assert.Single(results.Select(r => r.Version.Id).Distinct());
    }

    // ---- The agent-server dialect: threads without an agent, listing, deletion, rollback ----

    private static ThreadChange NewThreadAt(Guid organizationId, Guid? agentId, Guid? versionId, IReadOnlyDictionary<string, string> metadata, DateTimeOffset createdAt)
    {
        var thread = new ChatThread
        {
            Id = Guid.CreateVersion7(),
            OrganizationId = organizationId,
            AgentId = agentId,
            AgentVersionId = versionId,
            Metadata = metadata,
            CreatedAt = createdAt,
            UpdatedAt = createdAt,
            WindowExpiresAt = createdAt.AddHours(1),
        };
        var change = new ThreadChange(thread, createdAt);
        change.AppendRaw(ThreadEventTypes.ThreadCreated, null, "{}");
        return change;
    }

    private async Task<ChatThread> CreateThreadAtAsync(Guid organizationId, Guid? agentId, Guid? versionId, IReadOnlyDictionary<string, string> metadata, DateTimeOffset createdAt)
    {
        var change = NewThreadAt(organizationId, agentId, versionId, metadata, createdAt);
        await Threads.CreateThreadAsync(change);
        return change.Thread;
    }

    private static Dictionary<string, string> Pairs(params (string Key, string Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);

    private static ThreadQuery QueryOf(Guid organizationId, Guid? agentId = null, IReadOnlyDictionary<string, string>? metadata = null,
        IReadOnlyList<Guid>? ids = null, int limit = 100, int offset = 0) =>
        new(organizationId, agentId, metadata ?? new Dictionary<string, string>(), ids, limit, offset);

    private async Task<Run> AddRunAsync(ChatThread thread, Guid versionId, RunStatus status = RunStatus.pending) =>
        await Threads.UpdateThreadAsync(thread.Id, change => change.SaveRun(
            new Run(Guid.CreateVersion7(), thread.Id, thread.OrganizationId, versionId, null, status, change.Now, null, null, null), ThreadEventTypes.RunQueued));

    [Fact]
    public async Task Threads_are_listed_newest_first_per_organization_by_agent_metadata_and_ids_in_pages()
    {
        var (organization, agent, version) = await SeedAsync();
        var (other, otherAgent, otherVersion) = await SeedAsync();
        var (secondAgent, secondVersion, _) = await _store.Agents.PublishAsync(organization.Id, Guid.NewGuid(), new AgentDefinition { Name = "Second" }, "hash-2");
        var start = new DateTimeOffset(2026, 11, 25, 8, 0, 0, TimeSpan.Zero);
        var t1 = await CreateThreadAtAsync(organization.Id, agent.Id, version.Id, Pairs(("user", "u1"), ("source", "test")), start);
        var t2 = await CreateThreadAtAsync(organization.Id, secondAgent.Id, secondVersion.Id, Pairs(("user", "u2")), start.AddSeconds(1));
        var t3 = await CreateThreadAtAsync(organization.Id, null, null, Pairs(("user", "u1")), start.AddSeconds(2));
        var t4 = await CreateThreadAtAsync(organization.Id, agent.Id, version.Id, Pairs(("user", "u1"), ("a.b", "x y")), start.AddSeconds(3));
        var foreign = await CreateThreadAtAsync(other.Id, otherAgent.Id, otherVersion.Id, Pairs(("user", "u1"), ("source", "test")), start.AddSeconds(4));

        async Task<Guid[]> Listed(ThreadQuery query) => [.. (await Threads.ListThreadsAsync(query)).Select(t => t.Id)];

        Assert.Equal([t4.Id, t3.Id, t2.Id, t1.Id], await Listed(QueryOf(organization.Id)));
        Assert.Equal([foreign.Id], await Listed(QueryOf(other.Id)));
        Assert.Empty(await Listed(QueryOf(Guid.NewGuid())));
        // By agent: a thread without an agent yet is not one of the agent's.
        Assert.Equal([t4.Id, t1.Id], await Listed(QueryOf(organization.Id, agent.Id)));
        Assert.Equal([t2.Id], await Listed(QueryOf(organization.Id, secondAgent.Id)));
        Assert.Empty(await Listed(QueryOf(organization.Id, otherAgent.Id)));
        // By metadata: every pair, exact values, keys taken literally (a dot is no path).
        Assert.Equal([t4.Id, t3.Id, t1.Id], await Listed(QueryOf(organization.Id, metadata: Pairs(("user", "u1")))));
        Assert.Equal([t1.Id], await Listed(QueryOf(organization.Id, metadata: Pairs(("user", "u1"), ("source", "test")))));
        Assert.Equal([t4.Id], await Listed(QueryOf(organization.Id, metadata: Pairs(("a.b", "x y")))));
        Assert.Empty(await Listed(QueryOf(organization.Id, metadata: Pairs(("user", "u")))));
        Assert.Empty(await Listed(QueryOf(organization.Id, metadata: Pairs(("a", "x y")))));
        Assert.Equal([t1.Id], await Listed(QueryOf(organization.Id, agent.Id, Pairs(("source", "test")))));
        // By ids: another organization's id is not listed; an empty list lists nothing.
        Assert.Equal([t3.Id, t1.Id], await Listed(QueryOf(organization.Id, ids: [t1.Id, t3.Id, foreign.Id, Guid.NewGuid()])));
        Assert.Empty(await Listed(QueryOf(organization.Id, ids: [])));
        // Pages.
        Assert.Equal([t4.Id, t3.Id], await Listed(QueryOf(organization.Id, limit: 2)));
        Assert.Equal([t2.Id, t1.Id], await Listed(QueryOf(organization.Id, limit: 2, offset: 2)));
        Assert.Equal([t1.Id], await Listed(QueryOf(organization.Id, limit: 2, offset: 3)));
        Assert.Empty(await Listed(QueryOf(organization.Id, limit: 2, offset: 4)));
        // Listed threads read back whole.
        var listed = (await Threads.ListThreadsAsync(QueryOf(organization.Id, ids: [t3.Id, t4.Id]))).ToDictionary(t => t.Id);
        Assert.Null(listed[t3.Id].AgentId);
        Assert.Null(listed[t3.Id].AgentVersionId);
        Assert.Equal(version.Id, listed[t4.Id].AgentVersionId);
        Assert.Equal("x y", listed[t4.Id].Metadata["a.b"]);
        AssertCloseTime(start.AddSeconds(3), listed[t4.Id].CreatedAt);
    }

    [Fact]
    public async Task A_thread_created_without_an_agent_gets_one_with_a_later_update()
    {
        var (organization, agent, version) = await SeedAsync();
        var thread = await CreateThreadAtAsync(organization.Id, null, null, Pairs(), DateTimeOffset.UtcNow);

        var read = await Threads.GetThreadAsync(thread.Id);
        Assert.Null(read!.AgentId);
        Assert.Null(read.AgentVersionId);
        Assert.Empty(await Threads.ListThreadsAsync(QueryOf(organization.Id, agent.Id)));

        await Threads.UpdateThreadAsync(thread.Id, change =>
        {
            change.Thread = change.Thread with { AgentId = agent.Id, AgentVersionId = version.Id };
            change.SaveRun(new Run(Guid.CreateVersion7(), thread.Id, organization.Id, version.Id, null, RunStatus.pending, change.Now, null, null, null), ThreadEventTypes.RunQueued);
            return true;
        });

        var assigned = await Threads.GetThreadAsync(thread.Id);
        Assert.Equal(agent.Id, assigned!.AgentId);
        Assert.Equal(version.Id, assigned.AgentVersionId);
        Assert.Equal([thread.Id], (await Threads.ListThreadsAsync(QueryOf(organization.Id, agent.Id))).Select(t => t.Id));
    }

    [Fact]
    public async Task Runs_of_a_thread_are_listed_newest_first_in_pages()
    {
        var (organization, agent, version) = await SeedAsync();
        var thread = await CreateThreadAtAsync(organization.Id, agent.Id, version.Id, Pairs(), DateTimeOffset.UtcNow);
        var neighbour = await CreateThreadAtAsync(organization.Id, agent.Id, version.Id, Pairs(), DateTimeOffset.UtcNow);
        var runs = new List<Run>();
        for (var i = 0; i < 3; i++)
        {
            runs.Add(await AddRunAsync(thread, version.Id));
            await AddRunAsync(neighbour, version.Id);
        }
        // Updating a run does not move it.
        await Threads.UpdateThreadAsync(thread.Id, change => change.SaveRun(runs[0] with { Status = RunStatus.success, StartedAt = change.Now, EndedAt = change.Now }, ThreadEventTypes.RunCompleted));

        var all = await Threads.ListRunsAsync(thread.Id, 10, 0);
        Assert.Equal([runs[2].Id, runs[1].Id, runs[0].Id], all.Select(r => r.Id));
        Assert.Equal(RunStatus.success, all[2].Status);
        Assert.Equal([runs[1].Id], (await Threads.ListRunsAsync(thread.Id, 1, 1)).Select(r => r.Id));
        Assert.Empty(await Threads.ListRunsAsync(thread.Id, 10, 3));
        Assert.Empty(await Threads.ListRunsAsync(Guid.NewGuid(), 10, 0));
    }

    [Fact]
    public async Task Deleting_a_thread_removes_its_events_messages_and_runs_and_nothing_of_another_organization()
    {
        async Task<(ChatThread Thread, ThreadMessage Message, Run Run)> Populated()
        {
            var (organization, agent, version) = await SeedAsync();
            var thread = await CreateThreadAtAsync(organization.Id, agent.Id, version.Id, Pairs(("k", "v")), DateTimeOffset.UtcNow);
            var run = await AddRunAsync(thread, version.Id);
            var message = await Threads.UpdateThreadAsync(thread.Id, change => change.AddMessage(Message(change, thread, "hi") with { RunId = run.Id }));
            return (thread, message, run);
        }
        var doomed = await Populated();
        var kept = await Populated();

        Assert.True(await Threads.DeleteThreadAsync(doomed.Thread.Id));

        Assert.Null(await Threads.GetThreadAsync(doomed.Thread.Id));
        Assert.Empty(await Threads.ReadEventsAsync(doomed.Thread.Id, 0, 100));
        Assert.Empty(await Threads.ListMessagesAsync(doomed.Thread.Id, 0, 100));
        Assert.Null(await Threads.GetMessageAsync(doomed.Message.Id));
        Assert.Null(await Threads.GetRunAsync(doomed.Run.Id));
        Assert.Empty(await Threads.ListRunsAsync(doomed.Thread.Id, 10, 0));
        Assert.Empty(await Threads.ListThreadsAsync(QueryOf(doomed.Thread.OrganizationId)));
        Assert.DoesNotContain((await Threads.ListUnfinishedRunsAsync()), r => r.Id == doomed.Run.Id);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => Threads.UpdateThreadAsync(doomed.Thread.Id, change => change.AppendRaw(ThreadEventTypes.MessageDelta, null, "{}")));
        Assert.False(await Threads.DeleteThreadAsync(doomed.Thread.Id));
        Assert.False(await Threads.DeleteThreadAsync(Guid.NewGuid()));

        Assert.Equal(3, (await Threads.ReadEventsAsync(kept.Thread.Id, 0, 100)).Count);
        Assert.Equal(kept.Message.Id, Assert.Single(await Threads.ListMessagesAsync(kept.Thread.Id, 0, 100)).Id);
        Assert.Equal(kept.Run.Id, (await Threads.GetRunAsync(kept.Run.Id))!.Id);
        Assert.Equal([kept.Thread.Id], (await Threads.ListThreadsAsync(QueryOf(kept.Thread.OrganizationId))).Select(t => t.Id));
    }

    [Fact]
    public async Task A_thread_deleted_while_another_node_appends_to_it_leaves_nothing_behind()
    {
        var second = await OpenSecondAsync(_store);
        _owned.Add(second.Owner);
        var thread = await CreateThreadAsync();
        var writing = new TaskCompletionSource();
        const int writers = 4;

        var appends = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            // Each writer appends until the thread is gone (bounded: a store that never deletes fails the test).
            for (var i = 0; i < 100_000; i++)
            {
                try
                {
                    await second.Threads.UpdateThreadAsync(thread.Id, change => change.AddMessage(Message(change, thread, $"{w}/{i}")));
                }
                catch (KeyNotFoundException)
                {
                    return;
                }
                if (i == 5) writing.TrySetResult();
            }
            Assert.Fail("The thread was never deleted.");
        })).ToList();
        await writing.Task;

        Assert.True(await Threads.DeleteThreadAsync(thread.Id));
        await Task.WhenAll(appends);

        Assert.Null(await second.Threads.GetThreadAsync(thread.Id));
        Assert.Empty(await second.Threads.ReadEventsAsync(thread.Id, 0, 10));
        Assert.Empty(await second.Threads.ListMessagesAsync(thread.Id, 0, 10));
    }

    [Fact]
    public async Task Rolling_back_a_run_deletes_it_with_its_messages_and_keeps_the_log()
    {
        var (organization, agent, version) = await SeedAsync();
        var thread = await CreateThreadAtAsync(organization.Id, agent.Id, version.Id, Pairs(), DateTimeOffset.UtcNow);
        var kept = await AddRunAsync(thread, version.Id);
        var rolledBack = await AddRunAsync(thread, version.Id, RunStatus.running);
        await Threads.UpdateThreadAsync(thread.Id, change =>
        {
            change.AddMessage(Message(change, thread, "first question") with { RunId = kept.Id });
            change.AddMessage(Message(change, thread, "first answer") with { RunId = kept.Id, Direction = MessageDirection.OUTBOUND, Status = MessageStatus.SENT });
            change.AddMessage(Message(change, thread, "second question") with { RunId = rolledBack.Id });
            change.AddMessage(Message(change, thread, "half an answer") with { RunId = rolledBack.Id, Direction = MessageDirection.OUTBOUND, Status = MessageStatus.SENT });
            return true;
        });
        var before = (await Threads.ReadEventsAsync(thread.Id, 0, 100)).Count;

        await Threads.UpdateThreadAsync(thread.Id, change => { change.RollBackRun(rolledBack); return true; });

        Assert.Null(await Threads.GetRunAsync(rolledBack.Id));
        Assert.Equal([kept.Id], (await Threads.ListRunsAsync(thread.Id, 10, 0)).Select(r => r.Id));
        Assert.Equal(["first question", "first answer"], (await Threads.ListMessagesAsync(thread.Id, 0, 100)).Select(m => m.MessageBody));
        var events = await Threads.ReadEventsAsync(thread.Id, 0, 100);
        Assert.Equal(before + 1, events.Count);
        Assert.Equal(ThreadEventTypes.RunRolledBack, events[^1].Type);
        Assert.Equal(rolledBack.Id, events[^1].RunId);
    }

    // ---- Publishable keys of the widget ----

    private static PublishableKey NewPublishableKey(Guid organizationId, Guid agentId, string name, DateTimeOffset createdAt, params string[] origins) =>
        new(Guid.NewGuid(), organizationId, agentId, name, PublishableKeys.GenerateKey(), origins, PublishableKeys.GenerateTokenSecret(), createdAt, null);

    [Fact]
    public async Task Publishable_keys_are_added_once_found_until_revoked_and_listed_per_organization()
    {
        var keys = _store.PublishableKeys;
        var (organization, agent, _) = await SeedAsync();
        var (other, otherAgent, _) = await SeedAsync();
        var start = new DateTimeOffset(2026, 11, 25, 8, 0, 0, TimeSpan.Zero);
        var docs = NewPublishableKey(organization.Id, agent.Id, "docs site", start, "https://example.com", "http://localhost:8080", PublishableKeys.SelfOrigin);
        var shop = NewPublishableKey(organization.Id, agent.Id, "shop", start.AddMinutes(1), "https://shop.example.com");
        var foreign = NewPublishableKey(other.Id, otherAgent.Id, "theirs", start.AddMinutes(2), "https://other.example");

        Assert.True(await keys.AddPublishableKeyAsync(docs));
        Assert.True(await keys.AddPublishableKeyAsync(shop));
        Assert.True(await keys.AddPublishableKeyAsync(foreign));
        // Duplicates (the same key value, or the same id) are left as they are.
        Assert.False(await keys.AddPublishableKeyAsync(docs));
        Assert.False(await keys.AddPublishableKeyAsync(docs with { Id = Guid.NewGuid(), Name = "copy" }));
        Assert.False(await keys.AddPublishableKeyAsync(docs with { Key = PublishableKeys.GenerateKey(), Name = "copy" }));

        var found = await keys.FindPublishableKeyAsync(docs.Key);
        Assert.NotNull(found);
        Assert.Equal(docs.Id, found.Id);
        Assert.Equal(organization.Id, found.OrganizationId);
        Assert.Equal(agent.Id, found.AgentId);
        Assert.Equal("docs site", found.Name);
        Assert.Equal(docs.AllowedOrigins, found.AllowedOrigins);
        Assert.Equal(docs.TokenSecret, found.TokenSecret);
        AssertCloseTime(start, found.CreatedAt);
        Assert.Null(found.RevokedAt);
        Assert.Null(await keys.FindPublishableKeyAsync(PublishableKeys.GenerateKey()));
        Assert.Equal([docs.Id, shop.Id], (await keys.ListPublishableKeysAsync(organization.Id)).Select(k => k.Id));
        Assert.Equal([foreign.Id], (await keys.ListPublishableKeysAsync(other.Id)).Select(k => k.Id));

        // Another organization cannot revoke it.
        Assert.Null(await keys.RevokePublishableKeyAsync(other.Id, docs.Id, start.AddHours(1)));
        Assert.NotNull(await keys.FindPublishableKeyAsync(docs.Key));
        Assert.Null(await keys.RevokePublishableKeyAsync(organization.Id, Guid.NewGuid(), start.AddHours(1)));

        var revoked = await keys.RevokePublishableKeyAsync(organization.Id, docs.Id, start.AddHours(1));
        AssertCloseTime(start.AddHours(1), revoked!.RevokedAt);
        Assert.Null(await keys.FindPublishableKeyAsync(docs.Key));
        Assert.NotNull(await keys.FindPublishableKeyAsync(shop.Key));
        // A revoked key stays revoked at its first time, and is still listed.
        var again = await keys.RevokePublishableKeyAsync(organization.Id, docs.Id, start.AddHours(2));
        AssertCloseTime(start.AddHours(1), again!.RevokedAt);
        var listed = await keys.ListPublishableKeysAsync(organization.Id);
        Assert.Equal([docs.Id, shop.Id], listed.Select(k => k.Id));
        AssertCloseTime(start.AddHours(1), listed[0].RevokedAt);
        Assert.Null(listed[1].RevokedAt);
    }

    private static ThreadMessage Message(ThreadChange change, ChatThread thread, string text) => new()
    {
        Id = Guid.CreateVersion7(),
        ThreadId = thread.Id,
        OrganizationId = thread.OrganizationId,
        Direction = MessageDirection.INBOUND,
        MessageBody = text,
        Status = MessageStatus.RECEIVED,
        CreatedAt = change.Now,
    };

    private static async Task AssertGapFreeAsync(IThreadStore threads, Guid threadId, int expected)
    {
        var events = await threads.ReadEventsAsync(threadId, 0, expected + 10);
        Assert.Equal(Enumerable.Range(1, expected).Select(i => (long)i), events.Select(e => e.Sequence));
        Assert.Equal(expected, (await threads.GetThreadAsync(threadId))!.LastSequence);
    }
}
