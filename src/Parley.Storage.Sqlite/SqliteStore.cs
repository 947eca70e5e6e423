using System.Globalization;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Parley.Core.Events;

namespace Parley.Storage.Sqlite;

/// <summary>
/// Parley's embedded store on one SQLite file in WAL mode. Reads use pooled connections in parallel; writes are
/// serialized on one writer thread (SQLite has a single writer anyway), which commits every write queued meanwhile in
/// one <c>BEGIN IMMEDIATE</c> transaction (group commit), and the events they appended are published to the bus in
/// commit order.
/// </summary>
public sealed partial class SqliteStore : IDisposable
{
    private readonly string _connectionString;
    private readonly IThreadEventBus _bus;
    private readonly TimeProvider _time;
    private readonly Core.Diagnostics.ParleyMetrics _metrics;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;

    // SQLite keeps memory statistics (sqlite3_memory_used) behind a global mutex taken on every allocation; Parley reads
    // none, and the lock/unlock pairs were ≈ 5 % of the writer thread's samples at 1,000 concurrent runs. The setting
    // must come before SQLite initializes (the first connection in the process); later it is refused (SQLITE_MISUSE),
    // harmlessly but without the speed-up, which the first store logs once.
    private static readonly int MemoryStatisticsOffResult;
    private static int _memoryStatisticsLogged;

    static SqliteStore()
    {
        SQLitePCL.Batteries_V2.Init();
        MemoryStatisticsOffResult = SQLitePCL.raw.sqlite3_config(SQLitePCL.raw.SQLITE_CONFIG_MEMSTATUS, 0);
    }

    /// <summary>Opens (creating and migrating when needed) the database named by <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The connection string is invalid.</exception>
    /// <exception cref="SqliteException">The file cannot be opened or created.</exception>
    public SqliteStore(IOptions<SqliteStoreOptions> options, IThreadEventBus bus, TimeProvider time, Core.Diagnostics.ParleyMetrics metrics,
        Microsoft.Extensions.Logging.ILogger<SqliteStore>? logger = null)
    {
        _logger = logger ?? Microsoft.Extensions.Logging.Abstractions.NullLogger<SqliteStore>.Instance;
        if (MemoryStatisticsOffResult != SQLitePCL.raw.SQLITE_OK && Interlocked.Exchange(ref _memoryStatisticsLogged, 1) == 0)
            Log.MemoryStatisticsStillOn(_logger, MemoryStatisticsOffResult);
        var builder = new SqliteConnectionStringBuilder(options.Value.ConnectionString) { Pooling = true, ForeignKeys = true, DefaultTimeout = 5 };
        if (builder.Mode is SqliteOpenMode.ReadWriteCreate && !string.IsNullOrEmpty(builder.DataSource) && builder.DataSource != ":memory:")
        {
            var folder = Path.GetDirectoryName(Path.GetFullPath(builder.DataSource));
            if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        }
        _connectionString = builder.ToString();
        _walRestartFrames = options.Value.WalRestartPages;
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
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0) return; // registered as several services: disposed by each
        _writes.Writer.TryComplete();
        _writerThread?.Join(TimeSpan.FromSeconds(30));
        _disposed = true;
        _checkpointStop.Cancel();
        try { _checkpointer?.Wait(TimeSpan.FromSeconds(30)); } catch (AggregateException) { } // a failed checkpoint was logged
        _checkpointStop.Dispose();
        if (_writer is not null) Close(_writer);
        while (_readers.TryTake(out var reader)) Close(reader);
        SqliteConnection.ClearAllPools();
    }

    // Open read connections, each with its commands kept (prepared once, like the write connection's): a read borrows
    // one and gives it back. Re-preparing each SELECT on every call was visible in perf profiles (sqlite3RunParser).
    private const int MaxIdleReaders = 16;
    private readonly System.Collections.Concurrent.ConcurrentBag<SqliteConnection> _readers = [];

    /// <summary>Borrows an open connection for reads (foreign keys and the busy timeout come from the connection string).</summary>
    private ReadLease Open()
    {
        if (_readers.TryTake(out var connection)) return new ReadLease(this, connection);
        connection = new SqliteConnection(_connectionString);
        connection.Open();
        KeptCommands.Add(connection, new Dictionary<string, KeptCommand>(StringComparer.Ordinal));
        return new ReadLease(this, connection);
    }

    private void Return(SqliteConnection connection)
    {
        if (!_disposed && _readers.Count < MaxIdleReaders) _readers.Add(connection);
        else Close(connection);
    }

    private static void Close(SqliteConnection connection)
    {
        if (KeptCommands.TryGetValue(connection, out var kept))
            foreach (var command in kept.Values) command.Release();
        RawStatement.Release(connection);
        connection.Dispose();
    }

    /// <summary>A borrowed read connection; disposing it gives it back.</summary>
    private readonly struct ReadLease(SqliteStore store, SqliteConnection connection) : IDisposable
    {
        public SqliteConnection Connection => connection;

        public static implicit operator SqliteConnection(ReadLease lease) => lease.Connection;

        public void Dispose() => store.Return(connection);
    }

    // The one connection that writes, opened once and used only by the writer thread: no pool round trip or PRAGMAs per
    // write. synchronous=NORMAL is safe in WAL mode (a power cut may lose the last commits, never corrupt the file).
    private SqliteConnection? _writer;

    // How long the writer's statements wait for a lock another connection holds (another process on the same file).
    private const int WriterBusyTimeoutMs = 5000;

    private SqliteConnection Writer()
    {
        if (_writer is not null) return _writer;
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        // No checkpoints on the writer thread (see CheckpointLoopAsync): SQLite's automatic checkpoint runs inside the
        // commit that crosses 1,000 WAL pages and stalled every write queued behind it for ≈ 15 ms (fsyncs included).
        // busy_timeout: while another connection holds the write lock (another process on the same file, or a checkpoint
        // of one), SQLite's own handler retries BEGIN IMMEDIATE in 1–100 ms steps (without it, Microsoft.Data.Sqlite's
        // retry loop sleeps 150 ms per attempt). This process's own RESTART checkpoints run on the writer thread.
        // cache_size: with many threads streaming at once each commit touches a page of every thread it writes, and
        // with SQLite's default 2 MB cache the writer read those pages back from the file (pread) on every commit. Not
        // larger than 16 MiB: when a B-tree split reorders its sibling pages, SQLite parks a page under the lock-byte
        // page's number (page 262,145 at 4 KiB pages), and the commit that follows drops cached pages past the end of
        // the database by scanning the page cache's whole hash table (pcache1TruncateUnsafe). With a 64 MiB cache that
        // scan was ≈ 4 % of the server's CPU under 1,000 streaming threads and ≈ 0.5 % with 16 MiB, which still holds
        // their working set (no more pread on the writer; docs/benchmarks.md).
        pragma.CommandText = $"PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA busy_timeout={WriterBusyTimeoutMs}; PRAGMA cache_size=-16384;";
        pragma.ExecuteNonQuery();
        KeptCommands.Add(connection, new Dictionary<string, KeptCommand>(StringComparer.Ordinal));
        _checkpointer = Task.Run(CheckpointLoopAsync);
        return _writer = connection;
    }

    // WAL checkpoints on their own connection and thread, so the writer never waits for one. A PASSIVE checkpoint copies
    // committed WAL frames into the database file while the writer goes on appending; once all frames are copied, the
    // next write starts the WAL from its beginning again, so the file stays bounded. It runs at most every
    // CheckpointIntervalMs while anything was committed. Found with the single-stream benchmark: every ≈ 265th delta
    // reached the client 15 ms late (docs/benchmarks.md).
    private const int CheckpointIntervalMs = 250;
    private readonly CancellationTokenSource _checkpointStop = new();
    private Task? _checkpointer;
    private long _commits;

    private async Task CheckpointLoopAsync()
    {
        long checkpointed = 0;
        SqliteConnection? connection = null;
        try
        {
            while (!_checkpointStop.IsCancellationRequested)
            {
                await Task.Delay(CheckpointIntervalMs, _checkpointStop.Token);
                var commits = Interlocked.Read(ref _commits);
                if (commits == checkpointed) continue;
                try
                {
                    if (connection is null)
                    {
                        var opened = new SqliteConnection(_connectionString);
                        try { opened.Open(); }
                        catch { opened.Dispose(); throw; }
                        connection = opened;
                    }
                    // A PASSIVE checkpoint never waits, but the WAL starts again from its beginning only when no reader
                    // is using it; under steady load some request is always reading, and the WAL grew without bound
                    // (1.5 GB for a 46 MB database in the ingest benchmark, every write extending the file). Past
                    // _walRestartFrames a RESTART checkpoint waits for the readers that started before it (through SQLite's
                    // busy handler, holding writers back meanwhile): at most 50 ms, as they read for a few ms, and the
                    // next tick tries again; past 4 × that up to 1 s. The next write then reuses the file.
                    // A RESTART holds writers back while it copies the frames committed since the last PASSIVE and
                    // syncs both files, so first up to CatchUpPasses more PASSIVE ones copy what arrived during the
                    // previous one (until one takes under CatchUpMs); the RESTART itself then runs on the writer
                    // thread, between two transactions (RestartWal).
                    var started = System.Diagnostics.Stopwatch.GetTimestamp();
                    var frames = Checkpoint(connection, "PASSIVE", busyTimeoutMs: 0, out _);
                    if (frames >= _walRestartFrames)
                    {
                        for (var pass = 0; pass < CatchUpPasses && System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds > CatchUpMs; pass++)
                        {
                            started = System.Diagnostics.Stopwatch.GetTimestamp();
                            Checkpoint(connection, "PASSIVE", busyTimeoutMs: 0, out _);
                        }
                        SyncDatabaseFile(connection);
                        var restart = new WalRestart(frames >= 4L * _walRestartFrames ? 1000 : 50);
                        if (_writes.Writer.TryWrite(restart)) // false once Dispose began
                            await restart.Done.Task.WaitAsync(_checkpointStop.Token);
                    }
                    checkpointed = commits;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The WAL grows until the next one succeeds; nothing is lost. A fresh connection next time.
                    Log.CheckpointFailed(_logger, ex);
                    connection?.Dispose();
                    connection = null;
                }
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            connection?.Dispose();
        }
    }

    // Syncs the database file before a RESTART is queued, on the checkpointer's thread. A PASSIVE checkpoint that leaves
    // frames behind (under load, every one: the writer commits meanwhile) writes its pages to the file without a sync;
    // SQLite syncs the file only when a checkpoint copies the whole WAL (wal.c, walCheckpoint), which here is the RESTART
    // on the writer thread, and that sync wrote everything the PASSIVE ones had copied since the last restart. Synced
    // here first, it writes only the RESTART's own pages: at 1,000 paced streaming runs a restart held the writer p50
    // ≤ 20–25 ms instead of ≤ 35 ms (docs/benchmarks.md). It only adds a sync: where it cannot run (SQLitePCLRaw's
    // provider is not the bundled e_sqlite3, whose handle it passes to e_sqlite3's own sqlite3_file_control) or fails,
    // the RESTART syncs everything, as before, logged once; a failure never keeps the RESTART from being queued.
    private void SyncDatabaseFile(SqliteConnection connection)
    {
        if (_databaseSyncUnavailable) return;
        int rc;
        try { rc = SqliteFileSync.Sync(connection); }
        catch (Exception ex)
        {
            _databaseSyncUnavailable = true; // another provider, a missing library or entry point stays so: not tried again
            Log.DatabaseSyncUnavailable(_logger, ex);
            return;
        }
        if (rc != SQLitePCL.raw.SQLITE_OK && Interlocked.Exchange(ref _databaseSyncFailureLogged, 1) == 0) Log.DatabaseSyncFailed(_logger, rc);
    }

    private static volatile bool _databaseSyncUnavailable;
    private int _databaseSyncFailureLogged;

    // PASSIVE checkpoints before a RESTART: more while the previous one took longer than CatchUpMs.
    private const int CatchUpPasses = 3;
    private const double CatchUpMs = 20;

    // A RESTART checkpoint the checkpointer queues for the writer thread, which runs it when it reads it (RestartWal),
    // outside any transaction; it is never part of a batch.
    private sealed class WalRestart(int busyTimeoutMs) : PendingWrite
    {
        /// <summary>How long the checkpoint waits for readers that started before it (ms).</summary>
        public int BusyTimeoutMs { get; } = busyTimeoutMs;

        /// <summary>Completed when the checkpoint ran (or failed).</summary>
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool Execute(SqliteConnection connection, SqliteTransaction tx) => throw new InvalidOperationException("A WAL restart is not a write.");

        public override void Complete() { }

        public override void Fail(Exception exception) { }
    }

    // Runs a RESTART checkpoint on the writer thread, between two transactions. Run by the checkpointer's own connection,
    // it first had to wait for the writer lock and then held the writer out; the writer's BEGIN IMMEDIATE waited for it
    // through SQLite's busy handler, which sleeps in steps of up to 25–50 ms, so a 60–130 ms checkpoint stopped every
    // write for ≈ 180 ms once a second at 1,000 paced streaming runs (docs/benchmarks.md). Here nothing waits for a lock
    // and the writes queued meanwhile go on the moment it ends.
    private void RestartWal(WalRestart restart)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var outcome = "failed";
        try
        {
            var connection = Writer();
            try
            {
                Checkpoint(connection, "RESTART", restart.BusyTimeoutMs, out var busy);
                outcome = busy ? "busy" : "restarted";
            }
            finally
            {
                using var timeout = connection.CreateCommand();
                timeout.CommandText = $"PRAGMA busy_timeout={WriterBusyTimeoutMs};";
                timeout.ExecuteNonQuery();
            }
            restart.Done.TrySetResult();
        }
        catch (Exception ex)
        {
            outcome = "failed";
            restart.Done.TrySetException(ex); // the checkpointer logs it; the writer goes on
        }
        _metrics.StoreWalRestartDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            new KeyValuePair<string, object?>("outcome", outcome));
    }

    // WAL frames after which a checkpoint also restarts the WAL (SqliteStoreOptions.WalRestartPages).
    private readonly int _walRestartFrames;

    // Runs a checkpoint (SQLite's wal_checkpoint pragma) that waits for locks at most busyTimeoutMs; returns the frames
    // in the WAL before it, and whether SQLite reported it blocked (for a RESTART: a reader or another connection kept
    // the WAL from starting over).
    private static long Checkpoint(SqliteConnection connection, string mode, int busyTimeoutMs, out bool busy)
    {
        using (var timeout = connection.CreateCommand())
        {
            timeout.CommandText = $"PRAGMA busy_timeout={busyTimeoutMs};";
            timeout.ExecuteNonQuery();
        }
        using var command = connection.CreateCommand();
        command.CommandText = $"PRAGMA wal_checkpoint({mode});";
        using var result = command.ExecuteReader();
        busy = false;
        if (!result.Read()) return 0;
        busy = result.GetInt64(0) != 0; // columns: busy, log frames, checkpointed frames
        return result.GetInt64(1);
    }

    private static partial class Log
    {
        [Microsoft.Extensions.Logging.LoggerMessage(1, Microsoft.Extensions.Logging.LogLevel.Warning, "A SQLite WAL checkpoint failed; retrying")]
        public static partial void CheckpointFailed(Microsoft.Extensions.Logging.ILogger logger, Exception exception);

        [Microsoft.Extensions.Logging.LoggerMessage(2, Microsoft.Extensions.Logging.LogLevel.Information,
            "SQLite refused to turn its memory statistics off (result code {ResultCode}: something in this process opened SQLite before Parley's store); writes take SQLite's global memory mutex, a few percent slower")]
        public static partial void MemoryStatisticsStillOn(Microsoft.Extensions.Logging.ILogger logger, int resultCode);

        [Microsoft.Extensions.Logging.LoggerMessage(3, Microsoft.Extensions.Logging.LogLevel.Information,
            "SQLite's database file cannot be synced ahead of a WAL restart (SQLite's library is not the bundled e_sqlite3, or it failed); each restart syncs it on the writer thread, a few ms longer under load")]
        public static partial void DatabaseSyncUnavailable(Microsoft.Extensions.Logging.ILogger logger, Exception exception);

        [Microsoft.Extensions.Logging.LoggerMessage(4, Microsoft.Extensions.Logging.LogLevel.Warning,
            "Syncing SQLite's database file ahead of a WAL restart failed (result code {ResultCode}); the restart syncs it on the writer thread")]
        public static partial void DatabaseSyncFailed(Microsoft.Extensions.Logging.ILogger logger, int resultCode);
    }

    private volatile bool _disposed;
    private int _disposeStarted;

    // Commands of the store's connections, kept by SQL text so SQLite parses and plans each statement once (re-preparing
    // every statement on every write was a visible slice of a perf profile). A connection is used by one caller at a time.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<SqliteConnection, Dictionary<string, KeptCommand>> KeptCommands = new();

    /// <summary>A command whose <c>using</c> at the call site does not dispose it: the store does, with the connection.</summary>
    private sealed class KeptCommand : SqliteCommand
    {
        public KeptCommand(string sql, SqliteConnection connection) : base(sql, connection) { }
        protected override void Dispose(bool disposing) { }
        public void Release() => base.Dispose(true);
    }

    // Group commit across threads: every write is queued to one writer thread, which takes everything queued since its
    // last commit (up to MaxWritesPerTransaction) into one transaction, each write inside its own savepoint so a write
    // that throws is undone alone. With many threads streaming at once, commits (WAL frames, page updates) per
    // second no longer bound events per second. Events are published after the commit, in commit order. The queue wakes
    // the writer thread from the caller's thread (synchronous continuation) rather than through a thread-pool item.
    private const int MaxWritesPerTransaction = 128;
    private readonly System.Threading.Channels.Channel<PendingWrite> _writes =
        System.Threading.Channels.Channel.CreateUnbounded<PendingWrite>(new() { SingleReader = true, AllowSynchronousContinuations = true });
    private Thread? _writerThread;
    private readonly object _writerStart = new();

    private Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, (T Result, IReadOnlyList<ThreadEvent> Events)> write, CancellationToken cancellationToken,
        Core.Storage.WritePriority priority = Core.Storage.WritePriority.Normal)
    {
        cancellationToken.ThrowIfCancellationRequested();
        EnsureWriterThread();
        var pending = new PendingWrite<T>(write, cancellationToken) { IsBulk = priority == Core.Storage.WritePriority.Bulk };
        if (!pending.IsBulk) Interlocked.Increment(ref _normalWritesQueued);
        if (!_writes.Writer.TryWrite(pending))
        {
            if (!pending.IsBulk) Interlocked.Decrement(ref _normalWritesQueued);
            throw new ObjectDisposedException(nameof(SqliteStore));
        }
        return pending.Task;
    }

    private void EnsureWriterThread()
    {
        if (_writerThread is not null) return;
        lock (_writerStart)
        {
            if (_writerThread is not null) return;
            var thread = new Thread(WriterLoop) { IsBackground = true, Name = "Parley SQLite writer" };
            thread.Start();
            _writerThread = thread;
        }
    }

    // Bulk writes (more deltas of a streaming run) wait in their own queue; each transaction takes the normal writes
    // queued so far first, then bulk ones until it holds MaxWritesPerTransaction writes or MaxEventsPerTransaction events,
    // so a run that just started commits its first output after at most one transaction of other runs' deltas (a few ms)
    // instead of after all of them. Every transaction takes at least one bulk write, so bulk writes are never starved.
    // Order between writes of one thread does not matter here: a run waits for each of its writes before the next.
    // A normal write must not wait for a full transaction of bulk writes either, before or after it: a transaction that
    // holds BulkWritesWithNormal writes stops taking bulk ones as soon as a normal write is queued, and one that holds
    // normal writes takes at most BulkWritesWithNormal bulk ones. At 1,000 paced streaming runs every bulk-filled
    // transaction held 128 writes (≈ 10 ms, up to 40 ms under load), and the three normal commits before a reply's first
    // token (the user's message, the run's start, its first delta) each waited ≈ 40 ms for one; now ≈ 5–10 ms
    // (docs/benchmarks.md). With 8 instead of 16 they waited a few ms less, but the all-at-once burst of 1,000 runs
    // paid ≈ 8 % more CPU per event for the smaller transactions.
    private const int MaxEventsPerTransaction = 2048;

    private const int BulkWritesWithNormal = 16;

    // Normal writes queued and not yet taken by the writer thread.
    private int _normalWritesQueued;

    private void WriterLoop()
    {
        var reader = _writes.Reader;
        var batch = new List<PendingWrite>(MaxWritesPerTransaction);
        var bulk = new Queue<PendingWrite>();
        while (true)
        {
            if (bulk.Count == 0 && !reader.TryPeek(out _))
            {
                if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) return;
                continue;
            }
            // Normal writes first (a few slots stay free for bulk ones), bulk ones set aside in arrival order.
            while (batch.Count < MaxWritesPerTransaction - 8 && reader.TryRead(out var next))
            {
                if (next.IsBulk) bulk.Enqueue(next);
                else if (next is WalRestart restart) RestartWal(restart); // between transactions: the batch is not begun
                else
                {
                    Interlocked.Decrement(ref _normalWritesQueued);
                    if (next.TryClaim()) batch.Add(next);
                }
            }
            if (batch.Count > 0 || bulk.Count > 0) Commit(batch, bulk);
            batch.Clear();
        }
    }

    private void Commit(List<PendingWrite> batch, Queue<PendingWrite> bulk)
    {
        var writeLimit = batch.Count > 0 ? batch.Count + BulkWritesWithNormal : MaxWritesPerTransaction;
        TakeBulk(bulk, batch);
        if (batch.Count == 0) return;
        try
        {
            var connection = Writer();
            using (var tx = connection.BeginTransaction(deferred: false))
            {
                TrustThreadCacheIfUnchanged(connection);
                if (batch.Count == 1 && bulk.Count == 0)
                    Execute(batch[0], connection, tx); // a lone write needs no savepoint: its transaction rolls back instead
                else
                {
                    var events = 0;
                    for (var i = 0; i < batch.Count || (batch.Count < writeLimit && events < MaxEventsPerTransaction
                        && (batch.Count < BulkWritesWithNormal || Volatile.Read(ref _normalWritesQueued) == 0) && TakeBulk(bulk, batch)); i++)
                    {
                        // Savepoint statements are kept prepared and run through SQLite's own API (SqliteTransaction.Save
                        // and Release parse a new statement on every call: two per write).
                        Savepoint(connection, "SAVEPOINT w");
                        if (Execute(batch[i], connection, tx))
                        {
                            Savepoint(connection, "RELEASE w");
                            events += batch[i].Events.Count;
                            continue;
                        }
                        Savepoint(connection, "ROLLBACK TO w");
                        Savepoint(connection, "RELEASE w");
                        // A failed write may have left deferred foreign-key checking on for the rest of the transaction.
                        using var pragma = Command(connection, "PRAGMA defer_foreign_keys=OFF", tx);
                        pragma.ExecuteNonQuery();
                    }
                }
                if (batch.Count > 1 || !batch[0].Failed)
                {
                    tx.Commit();
                    ThreadWritesCommitted();
                    OrganizationWritesEnded(committed: true);
                }
                else
                {
                    ThreadWritesRolledBack(); // it rolls back on dispose
                    OrganizationWritesEnded(committed: false);
                }
            }
            Interlocked.Increment(ref _commits);
        }
        catch (Exception ex)
        {
            ThreadWritesRolledBack();
            OrganizationWritesEnded(committed: false);
            foreach (var pending in batch) pending.Fail(ex); // nothing of this transaction was stored
            return;
        }
        var appended = 0;
        foreach (var pending in batch)
        {
            if (pending.Failed) { pending.Complete(); continue; }
            appended += pending.Events.Count;
            _bus.Publish(pending.Events);
            pending.Complete();
        }
        _metrics.RecordEventsAppended(appended);
    }

    private static void Savepoint(SqliteConnection connection, string sql) => RawStatement.For(connection, sql).Execute();

    private static readonly KeyValuePair<string, object?> NormalPriority = new("priority", "normal");
    private static readonly KeyValuePair<string, object?> BulkPriority = new("priority", "bulk");

    // Runs one write of the batch, first recording how long it waited for the writer thread.
    private bool Execute(PendingWrite write, SqliteConnection connection, SqliteTransaction tx)
    {
        if (_metrics.StoreWriteWait.Enabled)
            _metrics.StoreWriteWait.Record(System.Diagnostics.Stopwatch.GetElapsedTime(write.QueuedAt).TotalMilliseconds, write.IsBulk ? BulkPriority : NormalPriority);
        return write.Execute(connection, tx);
    }

    // Moves the oldest bulk write still wanted (not cancelled by its caller) into the batch; false when none is left.
    private static bool TakeBulk(Queue<PendingWrite> bulk, List<PendingWrite> batch)
    {
        while (bulk.TryDequeue(out var next))
            if (next.TryClaim())
            {
                batch.Add(next);
                return true;
            }
        return false;
    }

    /// <summary>One queued write: run by the writer thread inside the batch's transaction, completed after the commit.</summary>
    private abstract class PendingWrite
    {
        /// <summary>Committed after the normal writes queued with it (<see cref="Core.Storage.WritePriority.Bulk"/>).</summary>
        public bool IsBulk { get; init; }

        /// <summary>When it was queued (<see cref="System.Diagnostics.Stopwatch"/> timestamp).</summary>
        public long QueuedAt { get; } = System.Diagnostics.Stopwatch.GetTimestamp();

        private int _state; // 0 queued, 1 claimed by the writer, 2 cancelled by the caller

        protected bool TryCancel() => Interlocked.CompareExchange(ref _state, 2, 0) == 0;

        public bool TryClaim() => Interlocked.CompareExchange(ref _state, 1, 0) == 0;

        public IReadOnlyList<ThreadEvent> Events { get; protected set; } = [];

        public bool Failed { get; protected set; }

        /// <summary>Runs the write; false when it threw (its exception is kept for the caller).</summary>
        public abstract bool Execute(SqliteConnection connection, SqliteTransaction tx);

        public abstract void Complete();

        public abstract void Fail(Exception exception);
    }

    private sealed class PendingWrite<T> : PendingWrite
    {
        private readonly Func<SqliteConnection, SqliteTransaction, (T Result, IReadOnlyList<ThreadEvent> Events)> _write;
        private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CancellationTokenRegistration _cancellation;
        private T? _result;
        private Exception? _exception;

        public PendingWrite(Func<SqliteConnection, SqliteTransaction, (T Result, IReadOnlyList<ThreadEvent> Events)> write, CancellationToken cancellationToken)
        {
            _write = write;
            if (cancellationToken.CanBeCanceled)
                _cancellation = cancellationToken.Register(static (state, token) =>
                {
                    var self = (PendingWrite<T>)state!;
                    if (self.TryCancel()) self._completion.TrySetCanceled(token);
                }, this);
        }

        public Task<T> Task => _completion.Task;

        public override bool Execute(SqliteConnection connection, SqliteTransaction tx)
        {
            try
            {
                (_result, Events) = _write(connection, tx);
                return true;
            }
            catch (Exception ex)
            {
                _exception = ex;
                Failed = true;
                return false;
            }
        }

        public override void Complete()
        {
            _cancellation.Dispose();
            if (_exception is not null) _completion.TrySetException(_exception);
            else _completion.TrySetResult(_result!);
        }

        public override void Fail(Exception exception)
        {
            _cancellation.Dispose();
            _completion.TrySetException(_exception ?? exception);
        }
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, SqliteTransaction? tx = null, params (string Name, object? Value)[] parameters)
    {
        SqliteCommand command;
        if (KeptCommands.TryGetValue(connection, out var kept))
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
    // The round-trip format of a UTC DateTime is exactly yyyy-MM-ddTHH:mm:ss.fffffffZ, the stored form, on the
    // runtime's fast path (the equivalent custom format string was visible in perf profiles of the writer thread).
    private static string Text(DateTimeOffset time) => time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);
    private static string? Text(DateTimeOffset? time) => time is { } t ? Text(t) : null;

    /// <summary>Writes <paramref name="time"/> as <see cref="Text(DateTimeOffset)"/> does, in UTF-8 (28 bytes), without a string in between; returns the bytes written.</summary>
    private static int Utf8Time(DateTimeOffset time, Span<byte> destination) =>
        time.UtcDateTime.TryFormat(destination, out var written, "O", CultureInfo.InvariantCulture) ? written
            : throw new ArgumentException("The buffer is too small for a round-trip time.", nameof(destination));

    private static Guid ReadGuid(SqliteDataReader r, int i) => Guid.Parse(r.GetString(i));
    private static Guid? ReadNullableGuid(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : Guid.Parse(r.GetString(i));
    private static DateTimeOffset ReadTime(SqliteDataReader r, int i)
    {
        // Parley writes the round-trip form (Text); anything else a person may have stored is parsed the general way.
        var text = r.GetString(i);
        const DateTimeStyles utc = DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal;
        return DateTimeOffset.TryParseExact(text, "O", CultureInfo.InvariantCulture, utc, out var time)
            ? time
            : DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, utc);
    }
    private static DateTimeOffset? ReadNullableTime(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : ReadTime(r, i);
    private static string? ReadNullableString(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);
}
