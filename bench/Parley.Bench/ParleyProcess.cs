using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Parley.Bench;

/// <summary>A Parley server in its own process on 127.0.0.1, with the scripted model and bench agents; ended by its PID.</summary>
internal sealed class ParleyProcess : IAsyncDisposable
{
    public const string ApiKey = "pk_bench";
    public static readonly Guid StreamingAgent = Guid.Parse("b0000000-0000-4000-8000-000000000001");
    public static readonly Guid SilentAgent = Guid.Parse("b0000000-0000-4000-8000-000000000002");

    private readonly Process _process;
    private readonly string _folder;

    private ParleyProcess(Process process, string folder, Uri address)
    {
        _process = process;
        _folder = folder;
        Address = address;
    }

    public Uri Address { get; }
    public int Pid => _process.Id;

    /// <summary>Resident memory of the server process, in bytes (from /proc).</summary>
    public long ResidentBytes() => ChildProcess.ResidentBytes(_process);

    /// <summary>Total CPU time the server process used so far.</summary>
    public TimeSpan CpuTime() => ChildProcess.CpuTime(_process);

    /// <summary>Starts a Release Parley on a free loopback port with the scripted model and waits until it answers /healthz.</summary>
    /// <param name="serverDll">Path of the built Parley.Server.dll.</param>
    /// <param name="replyTokens">Deltas per scripted reply.</param>
    /// <param name="tokenDelayMs">Pause before each delta (ms; 0 = as fast as the server takes them).</param>
    /// <param name="timestamps">Which deltas the model stamps with its yield time (<see cref="Stamps"/>).</param>
    /// <param name="heartbeatSeconds">Idle-stream heartbeat interval (s).</param>
    /// <param name="extraArguments">More configuration flags (the two-node mode passes its connection strings here, see Cluster.cs).</param>
    public static async Task<ParleyProcess> StartAsync(string serverDll, int replyTokens, double tokenDelayMs, Stamps timestamps = Stamps.None, int heartbeatSeconds = 15, IEnumerable<string>? extraArguments = null)
    {
        if (!File.Exists(serverDll)) throw new FileNotFoundException($"Parley server not built: {serverDll} (run: dotnet build -c Release src/Parley.Server)");
        var folder = Directory.CreateTempSubdirectory("parley-bench-").FullName;
        var agents = Directory.CreateDirectory(Path.Combine(folder, "agents")).FullName;
        await File.WriteAllTextAsync(Path.Combine(agents, "streamer.yaml"),
            $"id: {StreamingAgent}\nname: Streamer\nmode: PROMPT\nmodel: bench\ninstructions: Stream.\n");
        await File.WriteAllTextAsync(Path.Combine(agents, "silent.yaml"),
            $"id: {SilentAgent}\nname: Silent\nmode: FLOW\ndiscardInboundSms: true\nflow: {{ start: a, nodes: {{ a: {{ type: say, text: hi }} }} }}\n");
        var port = FreePort();
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = folder,
        };
        foreach (var arg in new[]
        {
            serverDll, $"--urls=http://127.0.0.1:{port}", $"--ConnectionStrings:Parley=Data Source={Path.Combine(folder, "bench.db")}",
            $"--Parley:Demo:ApiKey={ApiKey}", "--Parley:Demo:PrintBanner=false", $"--Parley:Agents:Path={agents}", "--Parley:Agents:Watch=false",
            "--Parley:Models:bench:Provider=scripted", $"--Parley:Models:bench:ScriptedTokens={replyTokens}",
            $"--Parley:Models:bench:ScriptedDelayMs={tokenDelayMs.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            $"--Parley:Models:bench:ScriptedTimestamps={timestamps != Stamps.None}",
            $"--Parley:Models:bench:ScriptedTimestampsFirstTokenOnly={timestamps == Stamps.FirstToken}", "--Parley:Metrics:Prometheus=true",
            "--Parley:RateLimits:RequestsPerMinute=100000000", "--Parley:RateLimits:Burst=1000000", "--Parley:RateLimits:MaxConcurrentStreams=1000000",
            "--Parley:Runs:MaxConcurrentRuns=2048", $"--Parley:Streaming:HeartbeatSeconds={heartbeatSeconds}", "--Logging:LogLevel:Default=Warning",
        }.Concat(extraArguments ?? [])) info.ArgumentList.Add(arg);
        // The server runs with the GC its runtimeconfig ships with, unless PARLEY_BENCH_GC_SERVER=0/1 overrides it.
        if (Environment.GetEnvironmentVariable("PARLEY_BENCH_GC_SERVER") is { Length: > 0 } gcServer) info.Environment["DOTNET_gcServer"] = gcServer;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) Console.Error.WriteLine("[server] " + e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var address = new Uri($"http://127.0.0.1:{port}");
        await ChildProcess.WaitUntilReadyAsync(process, new Uri(address, "/healthz"), "Parley");
        Console.Error.WriteLine($"Parley.Bench: server pid {process.Id} at {address}");
        return new ParleyProcess(process, folder, address);
    }

    /// <summary>The server's Prometheus text (<c>/metrics</c>).</summary>
    public async Task<string> ScrapeAsync()
    {
        using var http = new HttpClient { BaseAddress = Address };
        return await http.GetStringAsync("/metrics");
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await ChildProcess.EndAsync(_process);
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Which deltas the scripted model stamps with the moment it yields them (<c>ScriptedTimestamps</c>, docs/models.md).</summary>
internal enum Stamps
{
    /// <summary>None: replies as a model writes them.</summary>
    None,

    /// <summary>The first delta only, with the moment the model was called too: for scenarios that measure the first delta.</summary>
    FirstToken,

    /// <summary>Every delta: for scenarios that measure every delta's delay (each delta ≈ 15 characters longer).</summary>
    EveryToken,
}
