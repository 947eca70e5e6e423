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
    /// hottest write — one event per token of every streaming reply, all on the one writer thread — and a perf profile at
    /// 1,000 concurrent runs spent more time in Microsoft.Data.Sqlite's per-execution work (parameter collection,
    /// statement enumeration, UTF-16 → UTF-8 per value) than in SQLite's insert itself (docs/benchmarks.md). The
    /// thread id, run id and time that consecutive events share are encoded once.
    /// <para>
    /// A run of consecutive <c>message.delta</c> events of one write (<see cref="DeltaRowEnd"/>) is stored as one row:
    /// <c>sequence</c> is the first event's, <c>last_sequence</c> the last one's, and <c>data</c> their data joined by
    /// <c>'\n'</c>, which the compact JSON Parley writes never contains (inside a string it is escaped, RFC 8259 section
    /// 7); a delta whose data holds one anyway is stored on its own. A row per event cost more in SQLite's
    /// per-row work (B-tree seek, record encoding, cell balancing) than anything else on the writer thread when a
    /// reply streams faster than the writer commits (docs/benchmarks.md, "Fewer rows than events"). A single event
    /// keeps <c>last_sequence</c> NULL. <see cref="SqliteStore.ReadEventsAsync"/> splits the rows again.
    /// </para>
    /// </summary>
    private sealed class EventInserter
    {
        private const string Sql = "INSERT INTO thread_events (thread_id, sequence, type, run_id, created_at, data, last_sequence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

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
            for (var i = 0; i < events.Count;) // not foreach: an interface's enumerator is an allocation per write
            {
                var e = events[i];
                var end = DeltaRowEnd(events, i);
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
                var dataLength = end - i - 1; // the separators
                for (var k = i; k < end; k++) dataLength += Encoding.UTF8.GetByteCount(events[k].Data);
                if (_buffer.Length < VaryingAt + typeLength + dataLength)
                {
                    var larger = new byte[Math.Max(_buffer.Length * 2, VaryingAt + typeLength + dataLength)];
                    _buffer.AsSpan(0, VaryingAt).CopyTo(larger);
                    _buffer = larger;
                }
                Encoding.UTF8.GetBytes(e.Type, _buffer.AsSpan(VaryingAt));
                var at = VaryingAt + typeLength;
                for (var k = i; k < end; k++)
                {
                    if (k > i) _buffer[at++] = (byte)'\n';
                    at += Encoding.UTF8.GetBytes(events[k].Data, _buffer.AsSpan(at));
                }

                _statement.BindUtf8(1, _buffer.AsSpan(ThreadAt, 36)).Bind(2, e.Sequence).BindUtf8(3, _buffer.AsSpan(VaryingAt, typeLength))
                    .BindUtf8(5, _buffer.AsSpan(TimeAt, timeLength)).BindUtf8(6, _buffer.AsSpan(VaryingAt + typeLength, dataLength))
                    .Bind(7, end - i > 1 ? events[end - 1].Sequence : (long?)null);
                if (hasRun) _statement.BindUtf8(4, _buffer.AsSpan(RunAt, 36));
                else _statement.Bind(4, (string?)null);
                _statement.Execute();
                i = end;
            }
        }
    }

    /// <summary>Events stored in one row at most (<see cref="EventInserter"/>).</summary>
    internal const int MaxEventsPerRow = 256;

    /// <summary>Characters of data stored in one row at most, separators included (<see cref="EventInserter"/>).</summary>
    internal const int MaxDataCharsPerRow = 32 * 1024;

    /// <summary>
    /// The end (exclusive) of the row that starts at <paramref name="start"/> of <paramref name="events"/>: past the
    /// <c>message.delta</c> events that follow it with the same thread, run and time and consecutive sequence numbers,
    /// up to <see cref="MaxEventsPerRow"/> events and <see cref="MaxDataCharsPerRow"/> characters; just past
    /// <paramref name="start"/> for any other event, and for a delta whose data contains <c>'\n'</c>, the separator.
    /// </summary>
    internal static int DeltaRowEnd(IReadOnlyList<ThreadEvent> events, int start)
    {
        var first = events[start];
        if (!IsJoinable(first)) return start + 1;
        var end = start + 1;
        var chars = first.Data.Length;
        while (end < events.Count && end - start < MaxEventsPerRow)
        {
            var next = events[end];
            chars += 1 + next.Data.Length;
            if (chars > MaxDataCharsPerRow || !IsJoinable(next) || next.ThreadId != first.ThreadId || next.RunId != first.RunId
                || next.CreatedAt != first.CreatedAt || next.Sequence != events[end - 1].Sequence + 1)
                break;
            end++;
        }
        return end;

        static bool IsJoinable(ThreadEvent e) => e.Type == ThreadEventTypes.MessageDelta && !e.Data.Contains('\n');
    }

    /// <summary>
    /// Adds to <paramref name="events"/> the events of one stored row (<see cref="EventInserter"/>) after
    /// <paramref name="afterSequence"/>, until it holds <paramref name="limit"/>: the row's one event when
    /// <paramref name="lastSequence"/> is null, else the events <paramref name="sequence"/>–<paramref name="lastSequence"/>
    /// whose data <paramref name="data"/> joins with <c>'\n'</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">The data does not split into as many events as the row's sequence range names.</exception>
    internal static void AddRowEvents(List<ThreadEvent> events, int limit, long afterSequence, Guid threadId, long sequence, long? lastSequence,
        string type, Guid? runId, DateTimeOffset createdAt, string data)
    {
        if (lastSequence is not { } last)
        {
            events.Add(new ThreadEvent(threadId, sequence, type, runId, createdAt, data));
            return;
        }
        var start = 0;
        for (var s = sequence; s <= last && events.Count < limit; s++)
        {
            var separator = data.IndexOf('\n', start);
            if ((separator < 0) != (s == last))
                throw new InvalidDataException($"The stored events {sequence}–{last} of thread {threadId} do not split into {last - sequence + 1} events.");
            var end = separator < 0 ? data.Length : separator;
            if (s > afterSequence) events.Add(new ThreadEvent(threadId, s, type, runId, createdAt, data[start..end]));
            start = end + 1;
        }
    }
}
