using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Parley.Bench;

/// <summary>
/// The ceiling: a minimal Kestrel endpoint that writes pre-formatted SSE events of the same size as Parley's delta
/// events, flushed one by one, with no Parley code in the path. Throughput figures are reported as a ratio to it.
/// It also serves the floors of the latency and memory scenarios, from a process of its own (<see cref="CeilingProcess"/>)
/// so that its memory and CPU are its own: <c>/paced</c> (events stamped as written, one every <c>delayMs</c>) and
/// <c>/idle</c> (headers at once, then a heartbeat comment every <c>heartbeatSeconds</c>).
/// </summary>
internal sealed class Ceiling : IAsyncDisposable
{
    private readonly WebApplication _app;
    private Ceiling(WebApplication app, Uri address) { _app = app; Address = address; }
    public Uri Address { get; }

    /// <summary>
    /// An event shaped like Parley's <c>message.delta</c> (id, event, data), for sequence number <paramref name="i"/>,
    /// its delta ending with <paramref name="stamp"/>.
    /// </summary>
    public static byte[] Event(long i, string stamp = "") => Encoding.UTF8.GetBytes(
        $"event: message.delta\ndata: {{\"messageId\":\"01a20f5d-8187-74df-9c5b-457e044467cd\",\"delta\":\" token{i}{stamp}\"}}\nid: {i}\n\n");

    /// <summary>A paced event: as <see cref="Event"/>, its delta stamped with the moment it was written (Stopwatch ticks, as the scripted model's).</summary>
    public static byte[] PacedEvent(long i) => Event(i, "@" + Stopwatch.GetTimestamp().ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static readonly byte[] Heartbeat = Encoding.UTF8.GetBytes(": heartbeat\n\n");

    /// <summary>Starts the ceiling on 127.0.0.1:<paramref name="port"/> (a free port when null) in this process.</summary>
    public static async Task<Ceiling> StartAsync(int? port = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        port ??= ParleyProcess.FreePort();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/sse", async (HttpContext context, int n) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync();
            for (var i = 1; i <= n; i++)
            {
                await context.Response.Body.WriteAsync(Event(i));
                await context.Response.Body.FlushAsync();
            }
        });
        app.MapGet("/paced", async (HttpContext context, int n, double delayMs) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync();
            for (var i = 1; i <= n; i++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(delayMs), context.RequestAborted);
                await context.Response.Body.WriteAsync(PacedEvent(i), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });
        app.MapGet("/idle", async (HttpContext context, int heartbeatSeconds) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync();
            await context.Response.Body.FlushAsync();
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(heartbeatSeconds));
            try
            {
                while (await timer.WaitForNextTickAsync(context.RequestAborted))
                {
                    await context.Response.Body.WriteAsync(Heartbeat, context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
            }
            catch (OperationCanceledException) { } // the client went away
        });
        app.MapGet("/ready", () => "ok");
        await app.StartAsync();
        return new Ceiling(app, new Uri($"http://127.0.0.1:{port}"));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>
    /// Serves the ceiling on 127.0.0.1:<paramref name="port"/> until standard input closes (the bench that started this
    /// process ends it by its PID in any case): <c>Parley.Bench --serve-ceiling PORT</c>. Started by hand, keep its
    /// standard input open (with <c>&lt; /dev/null</c> it stops at once).
    /// </summary>
    public static async Task ServeAsync(int port)
    {
        await using var ceiling = await StartAsync(port);
        await Console.In.ReadToEndAsync();
    }
}

/// <summary>
/// The ceiling in a process of its own (this bench's dll with <c>--serve-ceiling</c>), with the GC Parley ships with
/// (workstation, concurrent; <c>PARLEY_BENCH_GC_SERVER</c> overrides it as for Parley), so its memory per stream and its
/// delays compare with Parley's. Ended by its PID.
/// </summary>
internal sealed class CeilingProcess : IAsyncDisposable
{
    private readonly Process _process;
    private CeilingProcess(Process process, Uri address) { _process = process; Address = address; }

    /// <summary>Where it listens (http://127.0.0.1:PORT).</summary>
    public Uri Address { get; }

    /// <summary>Starts it on a free loopback port and waits until it answers <c>/ready</c> (at most 30 s).</summary>
    /// <exception cref="TimeoutException">It did not answer within 30 s (it is then ended).</exception>
    public static async Task<CeilingProcess> StartAsync()
    {
        var port = ParleyProcess.FreePort();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true };
        info.ArgumentList.Add(typeof(Ceiling).Assembly.Location);
        info.ArgumentList.Add("--serve-ceiling");
        info.ArgumentList.Add(port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        info.Environment["DOTNET_gcServer"] = Environment.GetEnvironmentVariable("PARLEY_BENCH_GC_SERVER") is { Length: > 0 } gcServer ? gcServer : "0";
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        var address = new Uri($"http://127.0.0.1:{port}");
        await ChildProcess.WaitUntilReadyAsync(process, new Uri(address, "/ready"), "the ceiling process");
        Console.Error.WriteLine($"Parley.Bench: ceiling pid {process.Id} at {address}");
        return new CeilingProcess(process, address);
    }

    /// <summary>Resident memory of the process, in bytes.</summary>
    public long ResidentBytes() => ChildProcess.ResidentBytes(_process);

    /// <summary>Total CPU time the process used so far.</summary>
    public TimeSpan CpuTime() => ChildProcess.CpuTime(_process);

    public ValueTask DisposeAsync() => ChildProcess.EndAsync(_process);
}

/// <summary>What the bench does with the server processes it starts (Parley's and the ceiling's): all ended by PID.</summary>
internal static class ChildProcess
{
    /// <summary>
    /// Polls <paramref name="readyUrl"/> (1 s per attempt) every 100 ms until it answers 2xx, for at most 30 s.
    /// </summary>
    /// <exception cref="InvalidOperationException">The process exited first.</exception>
    /// <exception cref="TimeoutException">It did not answer within 30 s; the process is ended.</exception>
    public static async Task WaitUntilReadyAsync(Process process, Uri readyUrl, string name)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (process.HasExited)
            {
                var code = process.ExitCode;
                process.Dispose();
                throw new InvalidOperationException($"{name} exited with {code}");
            }
            try
            {
                using var response = await http.GetAsync(readyUrl);
                if (response.IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { } // the 1 s attempt timed out
            await Task.Delay(100);
        }
        await EndAsync(process);
        throw new TimeoutException($"{name} did not answer {readyUrl} within 30 s");
    }

    /// <summary>Resident memory of <paramref name="process"/>, in bytes (from /proc).</summary>
    public static long ResidentBytes(Process process)
    {
        process.Refresh();
        return process.WorkingSet64;
    }

    /// <summary>Total CPU time <paramref name="process"/> used so far.</summary>
    public static TimeSpan CpuTime(Process process)
    {
        process.Refresh();
        return process.TotalProcessorTime;
    }

    /// <summary>Ends <paramref name="process"/> (by its PID, with its children) if it still runs, waits for it, and disposes it.</summary>
    public static async ValueTask EndAsync(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
        process.Dispose();
    }
}
