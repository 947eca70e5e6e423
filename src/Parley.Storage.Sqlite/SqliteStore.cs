using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Parley.Core.Events;

namespace Parley.Storage.Sqlite;

/// <summary>
/// Parley's embedded store on one SQLite file in WAL mode. Reads use pooled connections in parallel; writes are
/// serialized by one in-process lock (SQLite has a single writer anyway) so each write is one short
/// <c>BEGIN IMMEDIATE</c> transaction, and the events it appended are published to the bus in commit order.
/// </summary>
public sealed partial class SqliteStore : IDisposable
{
    private readonly string _connectionString;
    private readonly IThreadEventBus _bus;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Core.Diagnostics.ParleyMetrics _metrics;

    /// <summary>Opens (creating and migrating when needed) the database named by <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The connection string is invalid.</exception>
    /// <exception cref="SqliteException">The file cannot be opened or created.</exception>
    public SqliteStore(IOptions<SqliteStoreOptions> options, IThreadEventBus bus, TimeProvider time, Core.Diagnostics.ParleyMetrics metrics)
    {
        var builder = new SqliteConnectionStringBuilder(options.Value.ConnectionString) { Pooling = true, ForeignKeys = true, DefaultTimeout = 5 };
        if (builder.Mode is SqliteOpenMode.ReadWriteCreate && !string.IsNullOrEmpty(builder.DataSource) && builder.DataSource != ":memory:")
        {
            var folder = Path.GetDirectoryName(Path.GetFullPath(builder.DataSource));
            if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        }
        _connectionString = builder.ToString();
        DataSource = builder.DataSource;
        _bus = bus;
        _time = time;
        _metrics = metrics;
        using var connection = Open();
        SqliteSchema.Migrate(connection);
    }

    /// <summary>The database file path as configured.</summary>
    public string DataSource { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        _writeLock.Dispose();
        _writer?.Dispose();
        SqliteConnection.ClearAllPools();
    }

    /// <summary>A pooled connection for reads (foreign keys and the busy timeout come from the connection string).</summary>
    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
    }

    // The one connection that writes, opened once and used only under _writeLock: no pool round trip or PRAGMAs per
    // write. synchronous=NORMAL is safe in WAL mode (a power cut may lose the last commits, never corrupt the file).
    private SqliteConnection? _writer;

    private SqliteConnection Writer()
    {
        if (_writer is not null) return _writer;
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA synchronous=NORMAL;";
        pragma.ExecuteNonQuery();
        return _writer = connection;
    }

    private async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, (T Result, IReadOnlyList<ThreadEvent> Events)> write, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var connection = Writer();
            using var tx = connection.BeginTransaction(deferred: false);
            var (result, events) = write(connection, tx);
            tx.Commit();
            if (events.Count > 0) _metrics.EventsAppended.Add(events.Count);
            _bus.Publish(events);
            return result;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, SqliteTransaction? tx = null, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = tx;
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command;
    }

    private static string Text(Guid id) => id.ToString("D");
    private static string? Text(Guid? id) => id?.ToString("D");
    private static string Text(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
    private static string? Text(DateTimeOffset? time) => time is { } t ? Text(t) : null;

    private static Guid ReadGuid(SqliteDataReader r, int i) => Guid.Parse(r.GetString(i));
    private static Guid? ReadNullableGuid(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : Guid.Parse(r.GetString(i));
    private static DateTimeOffset ReadTime(SqliteDataReader r, int i) =>
        DateTimeOffset.Parse(r.GetString(i), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);
    private static DateTimeOffset? ReadNullableTime(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : ReadTime(r, i);
    private static string? ReadNullableString(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
