using System.Diagnostics;
using Microsoft.Extensions.Options;
using Parley.Core.Diagnostics;
using Parley.Core.Runs;

namespace Parley.Server.Hosting;

/// <summary>Giving memory back to the operating system while the server is idle (<c>Parley:Memory</c>; docs/configuration.md, "Memory").</summary>
public sealed class MemoryOptions
{
    /// <summary>
    /// Whether an idle server that has grown compacts its heap and returns the free memory (default <c>true</c>; see
    /// <see cref="IdleMemoryTrimmer"/>).
    /// </summary>
    public bool TrimWhenIdle { get; set; } = true;

    /// <summary>
    /// How long the server must have been idle before it trims, in seconds (default 5; must be positive): no run
    /// executing, no thread event handled and under 1 MiB allocated in every second (<see cref="IdleMemoryTrimPolicy"/>).
    /// </summary>
    public int IdleSeconds { get; set; } = 5;
}

/// <summary>
/// When the server has been idle for <see cref="MemoryOptions.IdleSeconds"/> after its memory grew, runs one
/// aggressive garbage collection (<see cref="GCCollectionMode.Aggressive"/>: blocking, compacting, decommitting), so
/// that what the runtime keeps for allocations that are not coming goes back to the operating system.
/// </summary>
/// <remarks>
/// Why: the runtime's collector runs only when the process allocates. A server that opened thousands of streams and
/// then holds them idle (browser tabs left open) allocates a few bytes per heartbeat, so it keeps, for as long as the
/// streams stay idle, the memory its last collection left committed — the gen0 budget (sized from the CPU cache the
/// machine reports: ≈ 84 MB on a VM that reports a 504 MiB L3) and the garbage of the streams' opening between
/// their long-lived objects. On the benchmark machine that was 21.5–21.8 KB of process memory per idle stream against
/// 15.5–15.8 KB with the trim (docs/benchmarks.md, "Idle memory, given back"). The pause stops every request in
/// flight: the rules (<see cref="IdleMemoryTrimPolicy"/>) keep it away from runs and streaming replies, and from
/// servers under steady traffic. Each trim is logged (Information) and recorded in
/// <see cref="ParleyMetrics.IdleMemoryTrimDuration"/>.
/// </remarks>
public sealed partial class IdleMemoryTrimmer(IOptions<MemoryOptions> options, ParleyMetrics metrics, RunEngine runs, ILogger<IdleMemoryTrimmer> logger) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.Value;
        if (!settings.TrimWhenIdle) return;
        var policy = new IdleMemoryTrimPolicy(TimeSpan.FromSeconds(settings.IdleSeconds));
        var clock = Stopwatch.StartNew();
        using var timer = new PeriodicTimer(IdleMemoryTrimPolicy.CheckInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                var before = Environment.WorkingSet;
                var reading = new IdleMemoryTrimPolicy.Reading(clock.Elapsed, GC.GetTotalAllocatedBytes(), metrics.EventsSeenTotal, runs.IsRunning, before);
                if (!policy.ShouldTrim(reading)) continue;
                var idleFor = policy.IdleFor(clock.Elapsed);
                var started = Stopwatch.GetTimestamp();
                GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                var pause = Stopwatch.GetElapsedTime(started);
                var after = Environment.WorkingSet;
                policy.Trimmed(clock.Elapsed, pause, after);
                metrics.IdleMemoryTrimDuration.Record(pause.TotalMilliseconds);
                Log.Trimmed(logger, idleFor.TotalSeconds, (before - after) / 1048576.0, after / 1048576.0, pause.TotalMilliseconds);
            }
        }
        catch (OperationCanceledException) { }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Idle for {IdleSeconds:F0} s after memory grew: compacted the heap and gave {FreedMb:F1} MB back to the operating system ({ResidentMb:F1} MB resident now) in a {PauseMs:F0} ms pause")]
        public static partial void Trimmed(ILogger logger, double idleSeconds, double freedMb, double residentMb, double pauseMs);
    }
}

/// <summary>
/// When an idle server should give memory back (<see cref="IdleMemoryTrimmer"/>), from a <see cref="Reading"/> taken
/// every <see cref="CheckInterval"/>. It trims when all of these hold, and then not again until the server has been
/// busy and idle again:
/// <list type="number">
/// <item><b>Idle:</b> for the whole idle period (<c>Parley:Memory:IdleSeconds</c>): no run executing or scheduled on
/// this node, no thread event handled (appended here, received from another node, or read back for a stream: nobody
/// on this node waits for the next token while the process pauses), and at most
/// <see cref="IdleAllocationBytesPerSecond"/> allocated in each second between readings taken at most two intervals
/// apart (10,000 idle streams allocate 2–10 B per heartbeat: docs/benchmarks.md, idle-streams), so the collector would
/// not run on its own for a long time. Any reading that fails one of these starts the period over.
/// A request in flight that does none of these (a slow read of a long history, say), a request that arrives during the
/// pause (a user's next message, typically a few seconds after a reply ended), and a stream on this node waiting for
/// the first token of a run that another node executes can still meet the pause.</item>
/// <item><b>Grown:</b> the resident memory is at least <see cref="GrowthBytes"/> above its lowest reading since the
/// last trim (or the start), so there is something worth giving back.</item>
/// <item><b>Rare:</b> at least 100 × the last trim's pause has passed since it ended, so that even a server that is
/// busy and idle by turns is paused for at most 1 % of the time (a 130–190 ms pause at 10,000 streams on the benchmark
/// machine: 13–19 s apart at least).</item>
/// </list>
/// Not thread-safe: one caller, the trimmer's loop.
/// </summary>
/// <param name="idlePeriod">How long the server must stay idle (<c>Parley:Memory:IdleSeconds</c>).</param>
public sealed class IdleMemoryTrimPolicy(TimeSpan idlePeriod)
{
    /// <summary>How often the trimmer takes its readings (1 s).</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>The allocation rate below which the process counts as idle, in bytes per second (1 MiB/s).</summary>
    public const long IdleAllocationBytesPerSecond = 1 << 20;

    /// <summary>How far the resident memory must have grown over its low point before a trim is worth it, in bytes (32 MiB).</summary>
    public const long GrowthBytes = 32L << 20;

    /// <summary>One reading of the process.</summary>
    /// <param name="Now">When, on a monotonic clock.</param>
    /// <param name="AllocatedBytes">Bytes the process allocated since it started (<see cref="GC.GetTotalAllocatedBytes"/>).</param>
    /// <param name="EventsSeen">Thread events handled so far (<see cref="ParleyMetrics.EventsSeenTotal"/>).</param>
    /// <param name="RunsActive">Whether a run is executing or scheduled on this node (<see cref="RunEngine.IsRunning"/>).</param>
    /// <param name="ResidentBytes">The process's resident memory (<see cref="Environment.WorkingSet"/>), in bytes.</param>
    public readonly record struct Reading(TimeSpan Now, long AllocatedBytes, long EventsSeen, bool RunsActive, long ResidentBytes);

    private Reading? _previous;
    private TimeSpan _idleSince;
    private bool _trimmedThisPeriod;
    private long _lowestResident = long.MaxValue;
    private TimeSpan _nextTrimAllowed;

    /// <summary>Takes one <paramref name="reading"/>; returns whether to trim now.</summary>
    public bool ShouldTrim(Reading reading)
    {
        _lowestResident = Math.Min(_lowestResident, reading.ResidentBytes);
        var previous = _previous;
        _previous = reading;
        // A reading more than two intervals after the last (the process was starved or suspended) proves nothing about
        // the time between: it starts the period over too.
        if (previous is not { } last || reading.RunsActive || reading.EventsSeen != last.EventsSeen
            || reading.Now - last.Now > 2 * CheckInterval
            || reading.AllocatedBytes - last.AllocatedBytes > IdleAllocationBytesPerSecond * Math.Max(1, (reading.Now - last.Now).TotalSeconds))
        {
            (_idleSince, _trimmedThisPeriod) = (reading.Now, false);
            return false;
        }
        return !_trimmedThisPeriod && reading.Now - _idleSince >= idlePeriod && reading.ResidentBytes - _lowestResident >= GrowthBytes
            && reading.Now >= _nextTrimAllowed;
    }

    /// <summary>How long the server has been idle at <paramref name="now"/> (since the reading that last started the idle period).</summary>
    public TimeSpan IdleFor(TimeSpan now) => now - _idleSince;

    /// <summary>Records a trim that ended at <paramref name="now"/> after a <paramref name="pause"/>, leaving <paramref name="residentBytes"/> resident.</summary>
    public void Trimmed(TimeSpan now, TimeSpan pause, long residentBytes)
    {
        _trimmedThisPeriod = true;
        _lowestResident = residentBytes;
        _nextTrimAllowed = now + pause * 100;
    }
}
