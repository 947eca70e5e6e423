using Microsoft.Extensions.Options;
using Parley.Core.Events;
using Parley.Storage.Postgres;
using Parley.Tests.Infrastructure;

[assembly: AssemblyFixture(typeof(PostgresServer))]

namespace Parley.Tests.Storage;

/// <summary>
/// The store conformance tests on a real PostgreSQL (a throwaway cluster started for the test run, a new database
/// per test); a "second node" is a second store with its own connection pool on the same database.
/// </summary>
public sealed class PostgresThreadStoreTests(PostgresServer postgres) : ThreadStoreConformanceTests
{
    public override async ValueTask InitializeAsync()
    {
        if (postgres.SkipReason is { } reason) Assert.Skip(reason);
        await base.InitializeAsync();
    }

    protected override async Task<StoreUnderTest> OpenNewAsync() => Open(await postgres.CreateDatabaseAsync());

    protected override Task<StoreUnderTest> OpenSecondAsync(StoreUnderTest first) =>
        Task.FromResult(Open(((Owner)first.Owner).ConnectionString));

    private static StoreUnderTest Open(string connectionString)
    {
        var bus = new InProcessThreadEventBus();
        var store = new PostgresStore(Options.Create(new PostgresStoreOptions { ConnectionString = connectionString }), bus, TimeProvider.System, NewMetrics());
        return new StoreUnderTest(store, store, store, store, bus, new Owner(store, connectionString));
    }

    [Fact]
    public async Task Nodes_starting_at_once_on_an_empty_database_migrate_it_once()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        var stores = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => Open(connectionString))));
        try
        {
            await using var connection = new Npgsql.NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var count = new Npgsql.NpgsqlCommand("SELECT COUNT(*) - MAX(version) FROM schema_migrations", connection);
            Assert.Equal(0L, Convert.ToInt64(await count.ExecuteScalarAsync())); // every version applied exactly once
        }
        finally
        {
            foreach (var store in stores) await store.Owner.DisposeAsync();
        }
    }

    private sealed record Owner(PostgresStore Store, string ConnectionString) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Store.DisposeAsync();
    }
}
