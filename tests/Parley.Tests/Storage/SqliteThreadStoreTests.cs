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
