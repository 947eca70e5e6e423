using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore
{
    /// <summary>
    /// The statements every write of a streaming run executes besides its event inserts — its savepoint and the update
    /// of the thread's sequence and time — prepared once per connection and bound with SQLite's own API (SQLitePCLRaw),
    /// in the caller's transaction. Through Microsoft.Data.Sqlite each execution allocated a parameter binder, parameter
    /// objects and a statement enumerator, ≈ 7 % of the bytes allocated in the paced concurrent-runs benchmark, where
    /// every delta is its own write (docs/benchmarks.md).
    /// </summary>
    private sealed class RawStatements : IDisposable
    {
        private const string TouchThreadSql = "UPDATE threads SET updated_at = ?1, last_sequence = ?2 WHERE id = ?3";

        private static readonly ConditionalWeakTable<SqliteConnection, RawStatements> ByConnection = new();

        private readonly SqliteConnection _connection;
        private readonly Dictionary<string, sqlite3_stmt> _statements = new(StringComparer.Ordinal);
        private readonly byte[] _buffer = new byte[128];

        private RawStatements(SqliteConnection connection) => _connection = connection;

        /// <summary>The statements of <paramref name="connection"/> (created on first use; finalized with <see cref="Release"/>).</summary>
        public static RawStatements For(SqliteConnection connection) => ByConnection.GetValue(connection, static c => new RawStatements(c));

        /// <summary>Finalizes the statements of <paramref name="connection"/>, if it has any (before the connection closes).</summary>
        public static void Release(SqliteConnection connection)
        {
            if (ByConnection.TryGetValue(connection, out var statements))
            {
                statements.Dispose();
                ByConnection.Remove(connection);
            }
        }

        /// <summary>Executes <paramref name="sql"/>, one statement without parameters (a savepoint); throws <see cref="SqliteException"/> when SQLite refuses it.</summary>
        public void Execute(string sql) => Step(Prepared(sql));

        /// <summary>Sets the thread's <c>last_sequence</c> and <c>updated_at</c> (stored as UTC round-trip text, like <c>Text(DateTimeOffset)</c>).</summary>
        public void TouchThread(Guid threadId, long lastSequence, DateTimeOffset updatedAt)
        {
            var statement = Prepared(TouchThreadSql);
            updatedAt.UtcDateTime.TryFormat(_buffer, out var timeLength, "O", CultureInfo.InvariantCulture);
            threadId.TryFormat(_buffer.AsSpan(timeLength), out var idLength, "D");
            Check(raw.sqlite3_bind_text(statement, 1, _buffer.AsSpan(0, timeLength)));
            Check(raw.sqlite3_bind_int64(statement, 2, lastSequence));
            Check(raw.sqlite3_bind_text(statement, 3, _buffer.AsSpan(timeLength, idLength)));
            Step(statement);
        }

        private sqlite3_stmt Prepared(string sql)
        {
            if (_statements.TryGetValue(sql, out var statement)) return statement;
            Check(raw.sqlite3_prepare_v2(_connection.Handle, sql, out statement));
            _statements[sql] = statement;
            return statement;
        }

        private void Step(sqlite3_stmt statement)
        {
            var rc = raw.sqlite3_step(statement);
            raw.sqlite3_reset(statement);
            if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, _connection.Handle);
        }

        private void Check(int rc)
        {
            if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, _connection.Handle);
        }

        public void Dispose()
        {
            foreach (var statement in _statements.Values) raw.sqlite3_finalize(statement);
            _statements.Clear();
        }
    }
}
