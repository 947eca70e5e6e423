using System.Diagnostics.Metrics;

namespace Parley.Core.Diagnostics;

/// <summary>
/// Parley's own instruments, on the meter <see cref="MeterName"/> (System.Diagnostics.Metrics; exported by
/// OpenTelemetry, e.g. to the opt-in Prometheus endpoint <c>/metrics</c>). Created through <see cref="IMeterFactory"/>
/// so that every host (and every test host) has its own.
/// </summary>
public sealed class ParleyMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Parley";

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/>.</summary>
    public ParleyMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        OpenStreams = meter.CreateUpDownCounter<long>("parley.streams.open", "{stream}", "SSE streams open now, all dialects.");
        _eventsAppended = meter.CreateCounter<long>("parley.events.appended", "{event}", "Events appended to thread logs.");
        EventsDelivered = meter.CreateCounter<long>("parley.events.delivered", "{event}", "SSE events written to clients.");
        RunDuration = meter.CreateHistogram<double>("parley.run.duration", "ms", "Time from a run's start to its end.", advice: MillisecondBuckets);
        TimeToFirstOutput = meter.CreateHistogram<double>("parley.run.time_to_first_delta", "ms", "Time from a run's start to its first text delta or message.", advice: MillisecondBuckets);
        RunQueueWait = meter.CreateHistogram<double>("parley.run.queue_wait", "ms", "Time from a run being queued (the message's POST) to its start.", advice: MillisecondBuckets);
        QueuedRuns = meter.CreateUpDownCounter<long>("parley.runs.queued", "{run}", "Runs waiting to start (queue depth).");
        StoreWriteWait = meter.CreateHistogram<double>("parley.store.write_wait", "ms",
            "Time a write to the embedded (SQLite) store waited for its single writer thread, from queued to executed, tagged priority (normal or bulk).",
            advice: MillisecondBuckets);
        StoreWalRestartDuration = meter.CreateHistogram<double>("parley.store.wal_restart_duration", "ms",
            "Time the embedded (SQLite) store's writer thread spent restarting the write-ahead log, during which no write commits, tagged outcome (restarted, busy or failed).",
            advice: MillisecondBuckets);
        IdleMemoryTrimDuration = meter.CreateHistogram<double>("parley.memory.idle_trim_duration", "ms",
            "Pause of each compacting collection an idle server ran to give memory back to the operating system.", advice: MillisecondBuckets);
    }

    /// <summary>SSE streams open now.</summary>
    public UpDownCounter<long> OpenStreams { get; }

    // Events appended to thread logs: recorded only through RecordEventsAppended, which also counts them in EventsSeenTotal.
    private readonly Counter<long> _eventsAppended;

    private long _eventsSeenTotal;

    /// <summary>
    /// Thread events this host has handled since it started: appended here, received from another node (the Redis
    /// backplane), or read back from the store for a stream (a replay, or a catch-up after another node appended them).
    /// It stands still while this host appends nothing, receives nothing and replays nothing; the idle trim reads it.
    /// </summary>
    public long EventsSeenTotal => Interlocked.Read(ref _eventsSeenTotal);

    /// <summary>Counts <paramref name="count"/> events appended in one commit: the instrument <c>parley.events.appended</c> and <see cref="EventsSeenTotal"/>.</summary>
    public void RecordEventsAppended(int count)
    {
        if (count <= 0) return;
        _eventsAppended.Add(count);
        Interlocked.Add(ref _eventsSeenTotal, count);
    }

    /// <summary>Counts <paramref name="count"/> events received from another node or read back from the store (<see cref="EventsSeenTotal"/> only).</summary>
    public void RecordEventsSeen(int count)
    {
        if (count > 0) Interlocked.Add(ref _eventsSeenTotal, count);
    }

    /// <summary>SSE events written to clients.</summary>
    public Counter<long> EventsDelivered { get; }

    /// <summary>Run durations, in milliseconds, tagged with <c>status</c>.</summary>
    public Histogram<double> RunDuration { get; }

    /// <summary>Time to a run's first output, in milliseconds.</summary>
    public Histogram<double> TimeToFirstOutput { get; }

    /// <summary>Time runs waited in the queue before they started, in milliseconds.</summary>
    public Histogram<double> RunQueueWait { get; }

    // Latency buckets fine enough to read a p99 against millisecond targets (the default ones start at 5 ms).
    private static readonly InstrumentAdvice<double> MillisecondBuckets = new()
    {
        HistogramBucketBoundaries = [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 25, 35, 50, 75, 100, 150, 250, 500, 750, 1000, 2500, 5000, 10000, 30000],
    };

    /// <summary>Runs waiting to start.</summary>
    public UpDownCounter<long> QueuedRuns { get; }

    /// <summary>
    /// Time each write to the SQLite store waited for the writer thread (queued → executed inside a transaction), in
    /// milliseconds, tagged <c>priority</c> = <c>normal</c> (messages, a run's start and first output, every other
    /// change) or <c>bulk</c> (further deltas of a streaming reply, which yield to normal ones).
    /// </summary>
    public Histogram<double> StoreWriteWait { get; }

    /// <summary>
    /// Time each WAL restart (a RESTART checkpoint, run on the SQLite store's writer thread between two transactions once
    /// the WAL passes <c>Parley:Sqlite:WalRestartPages</c>) held the writer, in milliseconds: no write commits meanwhile.
    /// Tagged <c>outcome</c> = <c>restarted</c>; <c>busy</c> when a reader or another connection kept the WAL from
    /// starting over; <c>failed</c> when the checkpoint threw (logged). Both are tried again at the next checkpoint.
    /// </summary>
    public Histogram<double> StoreWalRestartDuration { get; }

    /// <summary>
    /// The pause of each idle trim (Parley.Server's <c>IdleMemoryTrimmer</c>: a blocking, compacting, decommitting
    /// collection run once the server has been idle for <c>Parley:Memory:IdleSeconds</c> after its memory grew), in
    /// milliseconds; its count is the number of trims.
    /// </summary>
    public Histogram<double> IdleMemoryTrimDuration { get; }
}
