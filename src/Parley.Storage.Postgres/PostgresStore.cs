using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using Parley.Core.Events;

namespace Parley.Storage.Postgres;

/// <summary>
/// Parley's scale-out store on PostgreSQL, shared by every node of a cluster. Each write is one transaction on a
/// pooled connection; a thread's writes are serialized across nodes by locking its row (<c>SELECT ... FOR UPDATE</c>)
/// inside the transaction, so per-thread sequence numbers stay gap-free and unique however many nodes append at once.
/// The events a write appended are published to the bus after it commits.
/// </summary>
public sealed partial class PostgresStore : IAsyncDisposable, IDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly IThreadEventBus _bus;
    private readonly TimeProvider _time;
    private readonly Core.Diagnostics.ParleyMetrics _metrics;

    /// <summary>Connects to the database named by <paramref name="options"/> and applies missing migrations (under an advisory lock).</summary>
    /// <exception cref="ArgumentException">The connection string is invalid.</exception>
    /// <exception cref="NpgsqlException">The server cannot be reached or refuses the login.</exception>
    public PostgresStore(IOptions<PostgresStoreOptions> options, IThreadEventBus bus, TimeProvider time, Core.Diagnostics.ParleyMetrics metrics)
    {
        var builder = new NpgsqlConnectionStringBuilder(options.Value.ConnectionString);
        // The store runs a small fixed set of statements: let Npgsql prepare them on first use (unless configured).
        if (builder.MaxAutoPrepare == 0) builder.MaxAutoPrepare = 64;
        _dataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        _bus = bus;
        _time = time;
        _metrics = metrics;
        try
        {
            PostgresSchema.MigrateAsync(_dataSource).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            var target = new NpgsqlConnectionStringBuilder(options.Value.ConnectionString);
            throw new InvalidOperationException(
                $"Cannot use the PostgreSQL database of ConnectionStrings:Postgres (host {target.Host}, port {target.Port}, database {target.Database ?? target.Username}): {ex.Message}", ex);
        }
    }

    /// <summary>The pooled data source (for the run leases and tests).</summary>
    internal NpgsqlDataSource DataSource => _dataSource;

    /// <summary>Runs <c>SELECT 1</c> (for health checks).</summary>
    /// <exception cref="NpgsqlException">The database cannot be reached.</exception>
    public async Task PingAsync(CancellationToken cancellationToken = default)
    {
        await using var ping = _dataSource.CreateCommand("SELECT 1");
        await ping.ExecuteScalarAsync(cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <inheritdoc />
    public void Dispose() => _dataSource.Dispose();

    // PostgreSQL keeps microseconds: a change's time is cut to that, so a row and the event announcing it agree.
    private DateTimeOffset Now()
    {
        var now = _time.GetUtcNow().UtcTicks;
        return new DateTimeOffset(now - now % 10, TimeSpan.Zero);
    }

    private async Task<T> WriteAsync<T>(Func<NpgsqlConnection, NpgsqlTransaction, Task<(T Result, IReadOnlyList<ThreadEvent> Events)>> write, CancellationToken cancellationToken)
    {
        (T Result, IReadOnlyList<ThreadEvent> Events) done;
        await using (var connection = await _dataSource.OpenConnectionAsync(cancellationToken))
        await using (var tx = await connection.BeginTransactionAsync(cancellationToken))
        {
            done = await write(connection, tx);
            await tx.CommitAsync(CancellationToken.None);
        }
        _metrics.RecordEventsAppended(done.Events.Count);
        _bus.Publish(done.Events);
        return done.Result;
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, string sql, NpgsqlTransaction? tx, params (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, tx);
        foreach (var (name, value) in parameters) command.Parameters.Add(Parameter(name, value));
        return command;
    }

    private NpgsqlCommand Query(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = _dataSource.CreateCommand(sql);
        foreach (var (name, value) in parameters) command.Parameters.Add(Parameter(name, value));
        return command;
    }

    private static NpgsqlParameter Parameter(string name, object? value) => value switch
    {
        // A null goes untyped, so PostgreSQL infers its type from the column it is written to.
        null => new NpgsqlParameter(name, DBNull.Value),
        DateTimeOffset t => new NpgsqlParameter(name, NpgsqlDbType.TimestampTz) { Value = t.UtcDateTime },
        _ => new NpgsqlParameter(name, value),
    };

    private static DateTimeOffset ReadTime(NpgsqlDataReader r, int i) => new(DateTime.SpecifyKind(r.GetDateTime(i), DateTimeKind.Utc));
    private static DateTimeOffset? ReadNullableTime(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : ReadTime(r, i);
    private static Guid? ReadNullableGuid(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetGuid(i);
    private static string? ReadNullableString(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
