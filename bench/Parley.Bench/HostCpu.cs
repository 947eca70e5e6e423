namespace Parley.Bench;

/// <summary>
/// One reading of the machine's CPU time as Linux counts it in <c>/proc/stat</c> (its first line: all cores, in
/// USER_HZ ticks; proc(5)). Of that time, <see cref="StealTicks"/> is what the hypervisor gave to other guests while
/// this one had work to run: time neither Parley nor the bench got, which on a shared virtual machine moves latency
/// percentiles from one run to the next (on 2026-12-04 the same build read a paced server-added p99 of 75 ms in one run
/// and 203 ms in another, docs/benchmarks.md).
/// </summary>
/// <param name="StealTicks">The <c>steal</c> column.</param>
/// <param name="TotalTicks">The sum of user, nice, system, idle, iowait, irq, softirq and steal.</param>
internal readonly record struct HostCpuSample(long StealTicks, long TotalTicks)
{
    /// <summary>The current reading, or null where there is no readable <c>/proc/stat</c> (not Linux).</summary>
    public static HostCpuSample? Read()
    {
        try
        {
            using var reader = new StreamReader("/proc/stat");
            var fields = reader.ReadLine()?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields is not { Length: >= 9 } || fields[0] != "cpu") return null;
            long total = 0;
            for (var i = 1; i <= 8; i++) total += long.Parse(fields[i], System.Globalization.CultureInfo.InvariantCulture);
            return new HostCpuSample(long.Parse(fields[8], System.Globalization.CultureInfo.InvariantCulture), total);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            return null;
        }
    }

    /// <summary>
    /// The share of all cores' time stolen from <paramref name="before"/> to <paramref name="after"/>, in percent
    /// (100 = every core stolen the whole time), rounded to 0.1; -1 when either reading is missing or no time passed.
    /// </summary>
    public static double StealPercent(HostCpuSample? before, HostCpuSample? after) =>
        before is { } b && after is { } a && a.TotalTicks > b.TotalTicks
            ? Math.Round(100.0 * (a.StealTicks - b.StealTicks) / (a.TotalTicks - b.TotalTicks), 1)
            : -1;
}
