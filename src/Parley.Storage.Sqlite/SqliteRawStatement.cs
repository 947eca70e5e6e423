using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore
{
    /// <summary>
    /// A statement prepared once per connection and bound with SQLite's own API (SQLitePCLRaw), for the writer's
    /// per-write statements: savepoints, the message insert and the thread row's touch. Microsoft.Data.Sqlite's
    /// per-execution work (a parameter object per value, binding by name through <c>sqlite3_bind_parameter_index</c>,
    /// statement enumeration) cost more than these statements themselves in perf profiles of the ingest benchmark
    /// (docs/benchmarks.md). Parameters are numbered (<c>?1</c>, <c>?2</c>, …); every execution binds all of them.
    /// </summary>
    private sealed class RawStatement
    {
        private static readonly ConditionalWeakTable<SqliteConnection, Dictionary<string, RawStatement>> ByConnection = new();

        private readonly SqliteConnection _connection;
        private readonly sqlite3_stmt _statement;

        private RawStatement(SqliteConnection connection, string sql)
        {
            _connection = connection;
            var rc = raw.sqlite3_prepare_v2(connection.Handle, sql, out _statement);
            SqliteException.ThrowExceptionForRC(rc, connection.Handle);
        }

        /// <summary>The statement <paramref name="sql"/> of <paramref name="connection"/>, prepared on first use (finalized by <see cref="Release"/>).</summary>
        public static RawStatement For(SqliteConnection connection, string sql)
        {
            var statements = ByConnection.GetValue(connection, static _ => new Dictionary<string, RawStatement>(StringComparer.Ordinal));
            if (!statements.TryGetValue(sql, out var statement)) statements[sql] = statement = new RawStatement(connection, sql);
            return statement;
        }

        /// <summary>Finalizes the statements of <paramref name="connection"/> (before it closes).</summary>
        public static void Release(SqliteConnection connection)
        {
            if (!ByConnection.TryGetValue(connection, out var statements)) return;
            foreach (var statement in statements.Values) raw.sqlite3_finalize(statement._statement);
            ByConnection.Remove(connection);
        }

        /// <summary>Binds text (null binds NULL).</summary>
        public RawStatement Bind(int index, string? value) =>
            Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text(_statement, index, value));

        /// <summary>Binds an integer (null binds NULL).</summary>
        public RawStatement Bind(int index, long? value) =>
            Check(value is { } v ? raw.sqlite3_bind_int64(_statement, index, v) : raw.sqlite3_bind_null(_statement, index));

        /// <summary>Binds UTF-8 text (an empty span binds as '', not NULL: SQLitePCLRaw pins an empty span to a null pointer).</summary>
        public RawStatement BindUtf8(int index, ReadOnlySpan<byte> utf8) =>
            Check(utf8.IsEmpty ? raw.sqlite3_bind_text(_statement, index, "") : raw.sqlite3_bind_text(_statement, index, utf8));

        /// <summary>Binds a time as the store writes it (<see cref="Text(DateTimeOffset)"/>), without a string in between.</summary>
        public RawStatement Bind(int index, DateTimeOffset value)
        {
            Span<byte> text = stackalloc byte[32];
            return Check(raw.sqlite3_bind_text(_statement, index, text[..Utf8Time(value, text)]));
        }

        /// <summary>Binds a UUID as the store writes it (lower-case text with hyphens), without a string in between.</summary>
        public RawStatement Bind(int index, Guid value)
        {
            Span<byte> text = stackalloc byte[36];
            value.TryFormat(text, out _, "D");
            return Check(raw.sqlite3_bind_text(_statement, index, text));
        }

        /// <summary>Binds a UUID as <see cref="Bind(int, Guid)"/> does (null binds NULL).</summary>
        public RawStatement Bind(int index, Guid? value) => value is { } v ? Bind(index, v) : Check(raw.sqlite3_bind_null(_statement, index));

        /// <summary>
        /// Steps once: true when it produced a row (read it with <see cref="Int64"/> and <see cref="TextEquals"/>, then
        /// <see cref="Reset"/>, which also ends an autocommit read). Throws <see cref="SqliteException"/> (after a reset) when SQLite fails.
        /// </summary>
        public bool Step()
        {
            var rc = raw.sqlite3_step(_statement);
            if (rc == raw.SQLITE_ROW) return true;
            raw.sqlite3_reset(_statement);
            if (rc != raw.SQLITE_DONE) SqliteException.ThrowExceptionForRC(rc, _connection.Handle);
            return false;
        }

        /// <summary>Column <paramref name="column"/> of the current row as an integer.</summary>
        public long Int64(int column) => raw.sqlite3_column_int64(_statement, column);

        /// <summary>True when column <paramref name="column"/> of the current row is the text <paramref name="utf8"/> (UTF-8).</summary>
        public bool TextEquals(int column, ReadOnlySpan<byte> utf8) =>
            raw.sqlite3_column_type(_statement, column) == raw.SQLITE_TEXT && raw.sqlite3_column_blob(_statement, column).SequenceEqual(utf8);

        /// <summary>Resets the statement after <see cref="Step"/> returned a row.</summary>
        public void Reset() => raw.sqlite3_reset(_statement);

        /// <summary>Runs the statement to its end; throws <see cref="SqliteException"/> when SQLite refuses it. Returns the rows it changed.</summary>
        public int Execute()
        {
            var rc = raw.sqlite3_step(_statement);
            raw.sqlite3_reset(_statement);
            if (rc != raw.SQLITE_DONE && rc != raw.SQLITE_ROW) SqliteException.ThrowExceptionForRC(rc, _connection.Handle);
            return raw.sqlite3_changes(_connection.Handle);
        }

        private RawStatement Check(int rc)
        {
            if (rc != raw.SQLITE_OK) SqliteException.ThrowExceptionForRC(rc, _connection.Handle);
            return this;
        }
    }
}
