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
        if (_writer is not null && WriterCommands.TryGetValue(_writer, out var kept))
            foreach (var command in kept.Values) command.Release();
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
        WriterCommands.Add(connection, new Dictionary<string, KeptCommand>(StringComparer.Ordinal));
        return _writer = connection;
    }

    // Commands of the write connection, kept by SQL text so SQLite parses and plans each statement once (re-preparing
    // every statement on every write was a visible slice of a perf profile). Used only under _writeLock.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<SqliteConnection, Dictionary<string, KeptCommand>> WriterCommands = new();

    /// <summary>A command whose <c>using</c> at the call site does not dispose it: the store does, with the connection.</summary>
    private sealed class KeptCommand : SqliteCommand
    {
        public KeptCommand(string sql, SqliteConnection connection) : base(sql, connection) { }
        protected override void Dispose(bool disposing) { }
        public void Release() => base.Dispose(true);
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
        SqliteCommand command;
        if (WriterCommands.TryGetValue(connection, out var kept))
        {
            if (!kept.TryGetValue(sql, out var cached)) kept[sql] = cached = new KeptCommand(sql, connection);
            cached.Parameters.Clear();
            command = cached;
        }
        else
        {
            command = connection.CreateCommand();
            command.CommandText = sql;
        }
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
