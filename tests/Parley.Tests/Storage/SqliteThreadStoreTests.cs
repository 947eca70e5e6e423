using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Parley.Core.Events;
using Parley.Storage.Sqlite;

namespace Parley.Tests.Storage;

/// <summary>The store conformance tests on SQLite; a "second node" is a second store on the same file.</summary>
public sealed class SqliteThreadStoreTests : ThreadStoreConformanceTests
{
    protected override Task<StoreUnderTest> OpenNewAsync()
    {
        var folder = Directory.CreateTempSubdirectory("parley-store-").FullName;
        return Task.FromResult(Open(Path.Combine(folder, "parley.db"), folder));
    }

    protected override Task<StoreUnderTest> OpenSecondAsync(StoreUnderTest first) =>
        Task.FromResult(Open(((Owner)first.Owner).Store.DataSource, null));

    [Fact]
    public void A_row_packs_only_consecutive_deltas_of_one_thread_run_and_time_up_to_its_bounds()
    {
        var thread = Guid.NewGuid();
        var run = Guid.NewGuid();
        var time = DateTimeOffset.UtcNow;
        ThreadEvent Delta(long sequence, Guid? runId = null, DateTimeOffset? at = null, string data = "{}", Guid? threadId = null) =>
            new(threadId ?? thread, sequence, ThreadEventTypes.MessageDelta, runId ?? run, at ?? time, data);
        int End(params ThreadEvent[] events) => SqliteStore.DeltaRowEnd(events, 0);

        Assert.Equal(3, End(Delta(1), Delta(2), Delta(3)));
        Assert.Equal(2, End(Delta(1), Delta(2), Delta(3, runId: Guid.NewGuid())));            // another run
        Assert.Equal(1, End(Delta(1), new ThreadEvent(thread, 2, ThreadEventTypes.MessageDelta, null, time, "{}"))); // no run
        Assert.Equal(2, End(Delta(1), Delta(2), Delta(3, at: time.AddMilliseconds(1))));     // another time
        Assert.Equal(1, End(Delta(1), Delta(3)));                                             // a gap in the sequence
        Assert.Equal(1, End(Delta(1), Delta(2, threadId: Guid.NewGuid())));                    // another thread
        Assert.Equal(1, End(Delta(1), new ThreadEvent(thread, 2, ThreadEventTypes.ToolCall, run, time, "{}")));
        Assert.Equal(1, End(Delta(1, data: "{\n}"), Delta(2)));                                // the separator in its data
        Assert.Equal(2, End(Delta(1), Delta(2), Delta(3, data: "{\n}")));
        var many = Enumerable.Range(1, 300).Select(i => Delta(i)).ToArray();
        Assert.Equal(SqliteStore.MaxEventsPerRow, End(many));
        var half = new string('x', SqliteStore.MaxDataCharsPerRow / 2);
        Assert.Equal(1, End(Delta(1, data: half), Delta(2, data: half)));                     // 1 separator over the bound
        Assert.Equal(2, End(Delta(1, data: half[1..]), Delta(2, data: half)));                // exactly at it
    }

    protected override long? CountEventRows(StoreUnderTest store, Guid threadId)
    {
        using var connection = new SqliteConnection($"Data Source={((Owner)store.Owner).Store.DataSource};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var count = connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM thread_events WHERE thread_id = $thread";
        count.Parameters.AddWithValue("$thread", threadId.ToString());
        return (long)count.ExecuteScalar()!;
    }

    private static StoreUnderTest Open(string path, string? folder)
    {
        var bus = new InProcessThreadEventBus();
        var store = new SqliteStore(Options.Create(new SqliteStoreOptions { ConnectionString = $"Data Source={path}" }), bus, TimeProvider.System, NewMetrics());
        return new StoreUnderTest(store, store, store, store, bus, new Owner(store, folder));
    }

    private sealed record Owner(SqliteStore Store, string? Folder) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            Store.Dispose();
            if (Folder is not null)
                try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
            return ValueTask.CompletedTask;
        }
    }
}
