using System.Collections.Concurrent;
using Microsoft.Data.Sqlite;
using SQLitePCL;
using Parley.Core.Threads;

namespace Parley.Storage.Sqlite;

// Threads kept in memory as they were last written, so that a write does not parse the thread's row (three JSON
// columns and four timestamps) inside the writer, and a request does not parse it again before the write: both were
// visible in perf profiles of the ingest benchmark (ReadThreadRow was 8.5 % of the writer thread's samples).
//
// Only the writer thread fills the cache, with the thread as the transaction it just committed left it (or as it read
// it). Another store on the same file (a second node in the conformance tests, another process) may write the row too,
// so a cached thread is used only after a look at its row's version: its last sequence, which every write of a thread
// raises (the row's last_sequence, or its last event's for a write of deltas only, which leaves the row as it is:
// LastSequenceOfThread), and updated_at (a thread deleted and created again with the same id starts its sequence
// again). That look reads two columns of one row and one index entry by their keys, without the JSON. The writer
// skips it while SQLite's data_version says no other connection has committed since its last transaction
// (TrustThreadCacheIfUnchanged). Within one group-committed transaction a later write of the same thread uses the
// earlier one's thread as is (the uncommitted overlay: no one else can write while the transaction holds the write
// lock); the overlay becomes the cache after the commit and is dropped when it fails.
public sealed partial class SqliteStore
{
    /// <summary>Threads kept at most; when full, the least recently used quarter is dropped.</summary>
    internal const int MaxCachedThreads = 4096;

    private readonly ConcurrentDictionary<Guid, CachedThread> _threadCache = new();

    // Writer thread only: the threads the open transaction wrote, null for a deleted one.
    private readonly Dictionary<Guid, ChatThread?> _uncommittedThreads = [];

    private sealed class CachedThread(ChatThread thread)
    {
        private byte[]? _updatedAt;

        public ChatThread Thread { get; } = thread;

        // Encoded on first use: only a version check needs it, and the writer (which caches a thread per write) skips
        // version checks while no other connection commits.
        public byte[] UpdatedAt => _updatedAt ??= EncodeTime(Thread.UpdatedAt);

        private static byte[] EncodeTime(DateTimeOffset time)
        {
            Span<byte> utf8 = stackalloc byte[32];
            return utf8[..Utf8Time(time, utf8)].ToArray();
        }
        public long LastUsed = Environment.TickCount64;
    }

    /// <summary>
    /// The thread as its row reads now: the cached thread when the row's version matches it, else the row parsed. Any
    /// thread; only the writer thread adds what it read to the cache (<paramref name="tx"/> not null).
    /// </summary>
    private ChatThread? ReadThreadCached(SqliteConnection connection, Guid id, SqliteTransaction? tx)
    {
        if (_threadCache.TryGetValue(id, out var cached))
        {
            // Through SQLite's own API (Microsoft.Data.Sqlite's reader, its parameter and the string of the time cost
            // more than the lookup): this runs once per request that names a thread.
            var query = RawStatement.For(connection, $"SELECT {LastSequenceOfThread}, updated_at FROM threads WHERE id = ?1").Bind(1, id);
            bool found;
            try { found = query.Step(); }
            catch (SqliteException ex) when (tx is null && (ex.SqliteErrorCode & 0xFF) is raw.SQLITE_BUSY or raw.SQLITE_LOCKED)
            {
                // A read connection has no busy handler of SQLite's own: Microsoft.Data.Sqlite retries busy reads, so
                // a busy moment reads the row the usual way below.
                return ReadThread(connection, id, tx);
            }
            if (!found)
            {
                _threadCache.TryRemove(KeyValuePair.Create(id, cached));
                return null;
            }
            var current = query.Int64(0) == cached.Thread.LastSequence && query.TextEquals(1, cached.UpdatedAt);
            query.Reset();
            if (current)
            {
                cached.LastUsed = Environment.TickCount64;
                return cached.Thread;
            }
            _threadCache.TryRemove(KeyValuePair.Create(id, cached));
        }
        var thread = ReadThread(connection, id, tx);
        if (thread is not null && tx is not null) Cache(thread);
        return thread;
    }

    /// <summary>Writer thread: the thread as the open transaction sees it, from memory when it can.</summary>
    private ChatThread? ReadThreadForWrite(SqliteConnection connection, Guid id, SqliteTransaction tx)
    {
        if (_uncommittedThreads.TryGetValue(id, out var written)) return written;
        if (_threadCacheCurrent && _threadCache.TryGetValue(id, out var cached))
        {
            cached.LastUsed = Environment.TickCount64;
            return cached.Thread;
        }
        return ReadThreadCached(connection, id, tx);
    }

    // Writer thread only. SQLite's data_version of the writer connection changes when, and only when, another connection
    // committed a change to the file (its own commits leave it as it is). The cache holds what this writer committed or
    // read inside its transactions, so while data_version stays the same from one transaction to the next no one else
    // wrote, and a write may use its cached thread without looking at the row's version (one statement per write, most of
    // the writer's reads in the ingest benchmark). When it changed, every entry may be stale: the cache is emptied (and
    // the organizations kept for the budget check), and this transaction looks at each row's version as before.
    private long _writerDataVersion = -1;
    private bool _threadCacheCurrent;

    /// <summary>Writer thread, right after <c>BEGIN IMMEDIATE</c>: whether the cache may be used without version checks in this transaction.</summary>
    private void TrustThreadCacheIfUnchanged(SqliteConnection connection)
    {
        _threadCacheCurrent = false;
        var query = RawStatement.For(connection, "PRAGMA data_version");
        var version = query.Step() ? query.Int64(0) : -1;
        query.Reset();
        if (version == _writerDataVersion)
        {
            _threadCacheCurrent = true;
            return;
        }
        _threadCache.Clear();
        OrganizationsChanged();
        _writerDataVersion = version;
    }

    // Invariant the trusted cache (TrustThreadCacheIfUnchanged) rests on: every statement of the writer that inserts,
    // updates or deletes a threads row is followed by ThreadWritten with the row as it now reads. A write that skipped
    // it would leave a stale thread in the cache with nothing to catch it while no other connection commits.
    /// <summary>Writer thread: the open transaction wrote <paramref name="thread"/> (null: deleted it); called after its statements succeeded.</summary>
    private void ThreadWritten(Guid id, ChatThread? thread) => _uncommittedThreads[id] = thread;

    /// <summary>Writer thread: the open transaction committed; what it wrote is now the threads' committed state.</summary>
    private void ThreadWritesCommitted()
    {
        foreach (var (id, thread) in _uncommittedThreads)
        {
            if (thread is null) _threadCache.TryRemove(id, out _);
            else Cache(thread);
        }
        _uncommittedThreads.Clear();
    }

    /// <summary>Writer thread: the open transaction is over without a commit; forget what it wrote.</summary>
    private void ThreadWritesRolledBack() => _uncommittedThreads.Clear();

    private void Cache(ChatThread thread)
    {
        // ContainsKey first: ConcurrentDictionary.Count takes every one of its locks, and this runs for every thread of
        // every commit (≈ 7 % of the writer thread's samples at 1,000 paced streaming runs, where every thread is cached).
        if (!_threadCache.ContainsKey(thread.Id) && _threadCache.Count >= MaxCachedThreads)
            foreach (var (id, _) in _threadCache.OrderBy(e => e.Value.LastUsed).Take(MaxCachedThreads / 4).ToList())
                _threadCache.TryRemove(id, out _);
        _threadCache[thread.Id] = new CachedThread(thread);
    }

    /// <summary>
    /// The thread exactly as its row now reads: the columns an update does not write (id, organization, channel,
    /// metadata, creation time) from <paramref name="stored"/>, times in UTC as the row stores them, and a private copy of
    /// the variables (the caller's dictionary may change later).
    /// </summary>
    private static ChatThread AsStored(ChatThread written, ChatThread stored) => written with
    {
        Id = stored.Id,
        OrganizationId = stored.OrganizationId,
        Channel = stored.Channel,
        Metadata = stored.Metadata,
        CreatedAt = stored.CreatedAt,
        UpdatedAt = written.UpdatedAt.ToUniversalTime(),
        ClosedAt = written.ClosedAt?.ToUniversalTime(),
        WindowExpiresAt = written.WindowExpiresAt.ToUniversalTime(),
        Variables = ReferenceEquals(written.Variables, stored.Variables) ? stored.Variables : new Dictionary<string, string>(written.Variables),
    };

    /// <summary>A new thread as its inserted row reads (times in UTC, private copies of its maps).</summary>
    private static ChatThread AsInserted(ChatThread thread) => thread with
    {
        Metadata = new Dictionary<string, string>(thread.Metadata),
        Variables = new Dictionary<string, string>(thread.Variables),
        CreatedAt = thread.CreatedAt.ToUniversalTime(),
        UpdatedAt = thread.UpdatedAt.ToUniversalTime(),
        ClosedAt = thread.ClosedAt?.ToUniversalTime(),
        WindowExpiresAt = thread.WindowExpiresAt.ToUniversalTime(),
    };
}
