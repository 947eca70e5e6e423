using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Data.Sqlite;
using Parley.Core.Events;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore
{
    /// <summary>
    /// Inserts thread events through one statement prepared once per connection and bound with SQLite's own API
    /// (SQLitePCLRaw, the layer under Microsoft.Data.Sqlite), in the caller's transaction. The event log is Parley's
    /// hottest write — one row per token of every streaming reply, all on the one writer thread — and a perf profile at
    /// 1,000 concurrent runs spent more time in Microsoft.Data.Sqlite's per-execution work (parameter collection,
    /// statement enumeration, UTF-16 → UTF-8 per value) than in SQLite's insert itself (docs/benchmarks.md). The
    /// thread id, run id and time that consecutive events share are encoded once.
    /// </summary>
    private sealed class EventInserter
    {
        private const string Sql = "INSERT INTO thread_events (thread_id, sequence, type, run_id, created_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

        private static readonly ConditionalWeakTable<SqliteConnection, EventInserter> ByConnection = new();

        private readonly RawStatement _statement;
        private byte[] _buffer = new byte[1024];

        private EventInserter(SqliteConnection connection) => _statement = RawStatement.For(connection, Sql);

        /// <summary>The inserter of <paramref name="connection"/> (created on first use; its statement is finalized with the connection's raw statements).</summary>
        public static EventInserter For(SqliteConnection connection) => ByConnection.GetValue(connection, static c => new EventInserter(c));

        /// <summary>Inserts <paramref name="events"/> (in order); throws <see cref="SqliteException"/> when SQLite refuses one.</summary>
        public void Insert(IReadOnlyList<ThreadEvent> events)
        {
            Guid? encodedThread = null, encodedRun = null; // hasRun: encodedRun is at RunAt (false for events of no run)
            DateTimeOffset? encodedTime = null;
            var hasRun = false;
            // Shared values are kept encoded at the front of the buffer: thread id (36 bytes), run id (36), time (28).
            const int ThreadAt = 0, RunAt = 36, TimeAt = 72, VaryingAt = 100;
            var timeLength = 0;
            for (var i = 0; i < events.Count; i++) // not foreach: an interface's enumerator is an allocation per write
            {
                var e = events[i];
                if (encodedThread != e.ThreadId)
                {
                    e.ThreadId.TryFormat(_buffer.AsSpan(ThreadAt, 36), out _, "D");
                    encodedThread = e.ThreadId;
                }
                if (encodedRun != e.RunId)
                {
                    hasRun = e.RunId is { } run && run.TryFormat(_buffer.AsSpan(RunAt, 36), out _, "D");
                    encodedRun = e.RunId;
                }
                if (encodedTime != e.CreatedAt)
                {
                    timeLength = Utf8Time(e.CreatedAt, _buffer.AsSpan(TimeAt, 28));
                    encodedTime = e.CreatedAt;
                }
                var typeLength = Encoding.UTF8.GetByteCount(e.Type);
                var dataLength = Encoding.UTF8.GetByteCount(e.Data);
                if (_buffer.Length < VaryingAt + typeLength + dataLength)
                {
                    var larger = new byte[Math.Max(_buffer.Length * 2, VaryingAt + typeLength + dataLength)];
                    _buffer.AsSpan(0, VaryingAt).CopyTo(larger);
                    _buffer = larger;
                }
                Encoding.UTF8.GetBytes(e.Type, _buffer.AsSpan(VaryingAt));
                Encoding.UTF8.GetBytes(e.Data, _buffer.AsSpan(VaryingAt + typeLength));

                _statement.BindUtf8(1, _buffer.AsSpan(ThreadAt, 36)).Bind(2, e.Sequence).BindUtf8(3, _buffer.AsSpan(VaryingAt, typeLength))
                    .BindUtf8(5, _buffer.AsSpan(TimeAt, timeLength)).BindUtf8(6, _buffer.AsSpan(VaryingAt + typeLength, dataLength));
                if (hasRun) _statement.BindUtf8(4, _buffer.AsSpan(RunAt, 36));
                else _statement.Bind(4, (string?)null);
                _statement.Execute();
            }
        }
    }
}
