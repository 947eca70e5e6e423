using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Storage;
using Parley.Core.Threads;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Storage;

/// <summary>
/// The SQLite store commits writes queued at the same time in one transaction (group commit): each write must still
/// be all-or-nothing on its own, and sequence numbers must stay gap-free per thread.
/// </summary>
public sealed class SqliteGroupCommitTests
{
    [Fact]
    public async Task A_write_that_fails_among_concurrent_writes_leaves_nothing_behind_and_the_others_are_stored()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var store = server.Services.GetRequiredService<IThreadStore>();
        var threads = await CreateThreadsAsync(server, 20);
        var before = new Dictionary<Guid, long>();
        foreach (var id in threads) before[id] = (await store.GetThreadAsync(id))!.LastSequence;
        var failing = threads[7];

        var messageId = Guid.CreateVersion7();

        // Three writes per thread, all queued at once. On the failing thread the first write stores a message and the
        // second stores it again: the database refuses it after the thread row was already updated in that write, so
        // only rolling back that write alone keeps the thread row, its log and the other writes consistent.
        var writes = threads.SelectMany(id => Enumerable.Range(0, 3).Select(n => store.UpdateThreadAsync(id, change =>
        {
            change.AppendRaw("test.event", null, $$"""{"n":{{n}}}""");
            if (id == failing && n < 2)
                change.AddMessage(new ThreadMessage
                {
                    Id = messageId,
                    ThreadId = id,
                    OrganizationId = change.Thread.OrganizationId,
                    Direction = MessageDirection.OUTBOUND,
                    MessageBody = $"attempt {n}",
                    Status = MessageStatus.SENT,
                    CreatedAt = change.Now,
                });
            return n;
        }))).ToList();
        await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => Task.WhenAll(writes));
        Assert.Equal(1, writes.Count(w => w.IsFaulted));

        foreach (var id in threads)
        {
            var appended = await store.ReadEventsAsync(id, before[id], 100);
            var expected = 3; // the failing thread: the first write's two events and the third write's one
            if (id == failing) Assert.Equal(["test.event", "message.created", "test.event"], appended.Select(e => e.Type));
            Assert.Equal(expected, appended.Count);
            Assert.Equal(Enumerable.Range(1, expected).Select(i => before[id] + i), appended.Select(e => e.Sequence)); // gap-free
            Assert.Equal(before[id] + expected, (await store.GetThreadAsync(id))!.LastSequence);
        }
    }

    [Fact]
    public async Task A_normal_write_queued_behind_bulk_writes_is_committed_before_them_and_every_bulk_write_still_lands()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var store = server.Services.GetRequiredService<IThreadStore>();
        var threads = await CreateThreadsAsync(server, 4);

        // Hold the writer thread inside a write, queue 3 bulk writes (a streaming run's later deltas) and then one normal
        // write (a user's message, a run's first delta), and let the writer go on: the normal one runs first.
        var order = new ConcurrentQueue<string>();
        using var release = new ManualResetEventSlim();
        var blocker = HoldWriter(store, threads[0], release);
        var bulk = new[] { Write(store, order, threads[1], "bulk 1", WritePriority.Bulk), Write(store, order, threads[2], "bulk 2", WritePriority.Bulk), Write(store, order, threads[1], "bulk 3", WritePriority.Bulk) };
        var normal = Write(store, order, threads[3], "normal", WritePriority.Normal);
        release.Set();
        await Task.WhenAll([blocker, normal, .. bulk]);

        Assert.Equal(["normal", "bulk 1", "bulk 2", "bulk 3"], order); // bulk writes keep their order among themselves
        var events = await store.ReadEventsAsync(threads[1], 0, 100);
        Assert.Equal(2, events.Count(e => e.Type == "test.event"));
    }

    [Fact]
    public async Task A_normal_write_queued_while_a_transaction_fills_with_bulk_writes_ends_that_transaction_early()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var store = server.Services.GetRequiredService<IThreadStore>();
        var threads = await CreateThreadsAsync(server, 4);

        // 50 bulk writes (other runs' later deltas) are queued while the writer is busy; the first of them is held
        // inside the transaction that takes them, and a normal write (a user's message, a run's first delta) arrives
        // then. It must not wait for all the others: the transaction ends after a few more (16 writes in all) and the
        // normal write goes next. Before, the same transaction went on to take every queued bulk write (up to 128) first.
        var order = new ConcurrentQueue<string>();
        using var release = new ManualResetEventSlim();
        using var inFirstBulk = new ManualResetEventSlim();
        using var releaseFirstBulk = new ManualResetEventSlim();
        var blocker = HoldWriter(store, threads[0], release);
        var bulk = Enumerable.Range(1, 50).Select(n => Write(store, order, threads[1 + n % 3], $"bulk {n}", WritePriority.Bulk, n == 1 ? () =>
        {
            inFirstBulk.Set();
            releaseFirstBulk.Wait(TimeSpan.FromSeconds(30));
        } : null)).ToList();
        release.Set();
        Assert.True(inFirstBulk.Wait(TimeSpan.FromSeconds(30)), "the writer never took the bulk writes");
        var normal = Write(store, order, threads[0], "normal", WritePriority.Normal);
        releaseFirstBulk.Set();
        await Task.WhenAll([blocker, normal, .. bulk]);

        var ran = order.ToList();
        Assert.InRange(ran.IndexOf("normal"), 1, 16);
        Assert.Equal(Enumerable.Range(1, 50).Select(n => $"bulk {n}"), ran.Where(name => name != "normal")); // bulk writes in their order
        int[] expected = [2, 16, 17, 17]; // the blocker and the normal write; bulk n went to thread 1 + n % 3
        for (var i = 0; i < threads.Count; i++)
            Assert.Equal(expected[i], (await store.ReadEventsAsync(threads[i], 0, 1000)).Count(e => e.Type == "test.event"));
    }

    private static async Task<List<Guid>> CreateThreadsAsync(ParleyTestServer server, int count)
    {
        var threads = new List<Guid>();
        for (var i = 0; i < count; i++)
            threads.Add(Guid.Parse((await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!));
        return threads;
    }

    // A write that holds the store's writer thread until release is set; returns once the writer is inside it.
    private static Task<bool> HoldWriter(IThreadStore store, Guid thread, ManualResetEventSlim release)
    {
        using var holding = new ManualResetEventSlim();
        var blocker = store.UpdateThreadAsync(thread, change =>
        {
            holding.Set();
            release.Wait(TimeSpan.FromSeconds(30));
            change.AppendRaw("test.event", null, "{}");
            return true;
        });
        Assert.True(holding.Wait(TimeSpan.FromSeconds(30)), "the writer never ran the first write");
        return blocker;
    }

    // A write that records its name in order when the writer runs it (and runs inside there, if given).
    private static Task<bool> Write(IThreadStore store, ConcurrentQueue<string> order, Guid thread, string name, WritePriority priority, Action? inside = null) =>
        store.UpdateThreadAsync(thread, change =>
        {
            order.Enqueue(name);
            inside?.Invoke();
            change.AppendRaw("test.event", null, "{}");
            return true;
        }, priority);

    [Fact]
    public async Task Under_writes_that_never_pause_the_write_ahead_log_restarts_past_its_limit_and_every_write_lands()
    {
        var folder = Directory.CreateTempSubdirectory("parley-wal-restart-").FullName;
        try
        {
            var database = Path.Combine(folder, "parley.db");
            // Each restart is measured (parley.store.wal_restart_duration). Only this test's limit is small enough to
            // restart in a test run, so other hosts in the process add nothing here.
            var restarts = 0;
            using var listener = new System.Diagnostics.Metrics.MeterListener();
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == Parley.Core.Diagnostics.ParleyMetrics.MeterName && instrument.Name == "parley.store.wal_restart_duration")
                    l.EnableMeasurementEvents(instrument);
            };
            listener.SetMeasurementEventCallback<double>((_, _, tags, _) =>
            {
                foreach (var tag in tags)
                    if (tag is { Key: "outcome", Value: "restarted" }) Interlocked.Increment(ref restarts);
            });
            listener.Start();
            // A 1 MiB limit (256 pages) instead of 64 MiB, so a test can cross it many times.
            await using var server = await ParleyTestServer.StartAsync(folder, extraArgs: "--Parley:Sqlite:WalRestartPages=256");
            var store = server.Services.GetRequiredService<IThreadStore>();
            var thread = Guid.Parse((await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!);
            // ≈ 32 MB of events over a few seconds (many checkpoint intervals), written almost without a pause, so the
            // background PASSIVE checkpoints never catch up with the writer and the log never starts over by itself:
            // only the RESTART past the limit (run on the writer thread between two transactions) keeps its file from
            // holding everything. Meanwhile a reader reads.
            var payload = $$"""{"text":"{{new string('y', 16_000)}}"}""";
            using var stop = new CancellationTokenSource();
            var reading = Task.Run(async () =>
            {
                var reads = 0;
                while (!stop.IsCancellationRequested)
                {
                    await store.ReadEventsAsync(thread, 0, 5);
                    reads++;
                }
                return reads;
            });
            long largest = 0;
            for (var round = 0; round < 200; round++)
            {
                await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => store.UpdateThreadAsync(thread, change =>
                {
                    change.AppendRaw("test.event", null, payload);
                    return true;
                })));
                largest = Math.Max(largest, new FileInfo(database + "-wal").Length);
                await Task.Delay(10);
            }
            await stop.CancelAsync();
            Assert.True(await reading > 0);
            Assert.True(largest < 16_000_000, $"the WAL grew to {largest:N0} bytes for ≈ 32 MB written with a 1 MiB restart limit");
            Assert.Equal(2000, (await store.ReadEventsAsync(thread, 0, 5000)).Count(e => e.Type == "test.event"));
            Assert.True(Volatile.Read(ref restarts) > 0, "no WAL restart was measured");
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task A_WAL_restart_limit_below_64_pages_stops_the_server_at_start_with_the_setting_named()
    {
        var folder = Directory.CreateTempSubdirectory("parley-wal-setting-").FullName;
        try
        {
            var error = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(
                () => ParleyTestServer.StartAsync(folder, extraArgs: "--Parley:Sqlite:WalRestartPages=10"));
            Assert.Contains("Parley:Sqlite:WalRestartPages must be at least 64", error.Message);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task The_write_ahead_log_is_checkpointed_in_the_background_so_it_stays_bounded_while_writes_go_on()
    {
        var folder = Directory.CreateTempSubdirectory("parley-wal-").FullName;
        try
        {
            var database = Path.Combine(folder, "parley.db");
            await using var server = await ParleyTestServer.StartAsync(folder);
            var store = server.Services.GetRequiredService<IThreadStore>();
            var thread = Guid.Parse((await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!);
            // 40 MB of events in 10 rounds, with a pause after each (the checkpointer runs every 250 ms). The writer never
            // checkpoints itself, so without the background checkpoints the log would hold all 40 MB.
            var payload = $$"""{"text":"{{new string('x', 100_000)}}"}""";
            long largest = 0;
            for (var round = 0; round < 10; round++)
            {
                await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => store.UpdateThreadAsync(thread, change =>
                {
                    change.AppendRaw("test.event", null, payload);
                    return true;
                })));
                largest = Math.Max(largest, new FileInfo(database + "-wal").Length);
                await Task.Delay(600);
            }
            Assert.True(largest < 20_000_000, $"the WAL grew to {largest:N0} bytes for 40 MB written");
            Assert.Equal(400, (await store.ReadEventsAsync(thread, 0, 1000)).Count(e => e.Type == "test.event"));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }
}
