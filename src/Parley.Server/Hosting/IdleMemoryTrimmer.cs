using System.Diagnostics;
using Microsoft.Extensions.Options;
using Parley.Core.Diagnostics;

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
    /// How long no event may have been appended to any thread and the process allocated almost nothing (under 1 MiB/s)
    /// before it trims, in seconds (default 5; must be positive).
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
/// 15.7 KB after such a collection (docs/benchmarks.md, "Idle memory, given back"). Under steady traffic the rule
/// below never fires, so it costs a busy server nothing. The decisions are <see cref="IdleMemoryTrimPolicy"/>'s.
/// Each trim is logged (Information) and recorded in <see cref="ParleyMetrics.IdleMemoryTrimDuration"/>.
/// </remarks>
public sealed partial class IdleMemoryTrimmer(IOptions<MemoryOptions> options, ParleyMetrics metrics, ILogger<IdleMemoryTrimmer> logger) : BackgroundService
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
                if (!policy.ShouldTrim(clock.Elapsed, GC.GetTotalAllocatedBytes(), metrics.EventsSeenTotal, before)) continue;
                var started = Stopwatch.GetTimestamp();
                GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                var pause = Stopwatch.GetElapsedTime(started);
                var after = Environment.WorkingSet;
                policy.Trimmed(clock.Elapsed, pause, after);
                metrics.IdleMemoryTrimDuration.Record(pause.TotalMilliseconds);
                Log.Trimmed(logger, settings.IdleSeconds, (before - after) / 1048576.0, after / 1048576.0, pause.TotalMilliseconds);
            }
        }
        catch (OperationCanceledException) { }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Idle for {IdleSeconds} s after memory grew: compacted the heap and gave {FreedMb:F1} MB back to the operating system ({ResidentMb:F1} MB resident now) in a {PauseMs:F0} ms pause")]
        public static partial void Trimmed(ILogger logger, int idleSeconds, double freedMb, double residentMb, double pauseMs);
    }
}

/// <summary>
/// When an idle server should give memory back (<see cref="IdleMemoryTrimmer"/>), from readings taken every
/// <see cref="CheckInterval"/>: all three must hold.
/// <list type="number">
/// <item><b>Idle:</b> for the last idle period (<c>Parley:Memory:IdleSeconds</c>) no event was appended to any thread,
/// here or on another node (no message, no reply streaming: nobody waits for the next token while the process pauses) and the process
/// allocated less than <see cref="IdleAllocationBytesPerSecond"/> per second (heartbeats of 10,000 streams allocate
/// ≈ 0.1–0.2 MB/s), so the collector would not run on its own for a long time.</item>
/// <item><b>Grown:</b> the resident memory is at least <see cref="GrowthBytes"/> above its lowest reading since the
/// last trim (or the start), so there is something worth giving back.</item>
/// <item><b>Rare:</b> at least 100 × the last trim's pause has passed since it ended, so trims stop the process for at
/// most 1 % of the time (a 150 ms pause for ≈ 150 MB of live heap on the benchmark machine: 15 s apart at least).</item>
/// </list>
/// Not thread-safe: one caller, the trimmer's loop.
/// </summary>
/// <param name="idlePeriod">How long allocation must stay below the idle rate (<c>Parley:Memory:IdleSeconds</c>).</param>
public sealed class IdleMemoryTrimPolicy(TimeSpan idlePeriod)
{
    /// <summary>How often the trimmer takes its readings (1 s).</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>The allocation rate below which the process counts as idle, in bytes per second (1 MiB/s).</summary>
    public const long IdleAllocationBytesPerSecond = 1 << 20;

    /// <summary>How far the resident memory must have grown over its low point before a trim is worth it, in bytes (32 MiB).</summary>
    public const long GrowthBytes = 32L << 20;

    private TimeSpan _idleSince;
    private long _allocatedAtIdleStart = -1;
    private long _eventsAtIdleStart;
    private long _lowestResident = long.MaxValue;
    private TimeSpan _nextTrimAllowed;

    /// <summary>
    /// Takes one reading and says whether to trim now: <paramref name="now"/> on a monotonic clock,
    /// <paramref name="allocatedBytes"/> the process's total allocated so far (<see cref="GC.GetTotalAllocatedBytes"/>),
    /// <paramref name="eventsAppended"/> the events appended to threads so far, here or on other nodes (<see cref="ParleyMetrics.EventsSeenTotal"/>),
    /// <paramref name="residentBytes"/> its resident memory (<see cref="Environment.WorkingSet"/>).
    /// </summary>
    public bool ShouldTrim(TimeSpan now, long allocatedBytes, long eventsAppended, long residentBytes)
    {
        _lowestResident = Math.Min(_lowestResident, residentBytes);
        // The idle period restarts at the first reading with an event appended since the period began, or with more
        // allocated since then than the idle rate allows.
        var idleFor = now - _idleSince;
        if (_allocatedAtIdleStart < 0 || eventsAppended != _eventsAtIdleStart
            || allocatedBytes - _allocatedAtIdleStart > IdleAllocationBytesPerSecond * Math.Max(1, idleFor.TotalSeconds))
        {
            (_idleSince, _allocatedAtIdleStart, _eventsAtIdleStart) = (now, allocatedBytes, eventsAppended);
            return false;
        }
        return idleFor >= idlePeriod && residentBytes - _lowestResident >= GrowthBytes && now >= _nextTrimAllowed;
    }

    /// <summary>Records a trim that ended at <paramref name="now"/> after a <paramref name="pause"/>, leaving <paramref name="residentBytes"/> resident.</summary>
    public void Trimmed(TimeSpan now, TimeSpan pause, long residentBytes)
    {
        _lowestResident = residentBytes;
        _nextTrimAllowed = now + pause * 100;
    }
}
