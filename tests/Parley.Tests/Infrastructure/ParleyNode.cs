using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// A real Parley server process (<c>dotnet Parley.Server.dll</c>) on a free loopback port, configured by command-line
/// keys, as an operator would run a node of a cluster. Ended by its PID: <see cref="KillAsync"/> is <c>kill -9</c>.
/// </summary>
public sealed class ParleyNode : IAsyncDisposable
{
    public const string ApiKey = "pk_test_cluster_key";

    private readonly Process _process;
    private readonly string _folder;
    private readonly ConcurrentQueue<string> _output = new();

    private ParleyNode(Process process, string folder, Uri address, string nodeId, ConcurrentQueue<string> output)
    {
        _process = process;
        _folder = folder;
        Address = address;
        NodeId = nodeId;
        _output = output;
        Client = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(60) };
        Client.DefaultRequestHeaders.Add("X-API-Key", ApiKey);
    }

    public Uri Address { get; }
    public string NodeId { get; }
    public HttpClient Client { get; }
    public bool HasExited => _process.HasExited;

    /// <summary>What the process printed (for failure messages).</summary>
    public string Output => string.Join('\n', _output.TakeLast(40));

    /// <summary>The server assembly built beside the tests (same configuration).</summary>
    public static string ServerDll()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory); // .../tests/Parley.Tests/bin/<Configuration>/<tfm>/
        var tfm = here.Name;
        var configuration = here.Parent!.Name;
        var root = here;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Parley.slnx"))) root = root.Parent;
        if (root is null) throw new InvalidOperationException("Parley.slnx not found above " + AppContext.BaseDirectory);
        return Path.Combine(root.FullName, "src", "Parley.Server", "bin", configuration, tfm, "Parley.Server.dll");
    }

    public static async Task<ParleyNode> StartAsync(string nodeId, string agentsFolder, IEnumerable<string> settings)
    {
        var dll = ServerDll();
        if (!File.Exists(dll)) throw new FileNotFoundException("Parley.Server is not built", dll);
        var folder = Directory.CreateTempSubdirectory($"parley-{nodeId}-").FullName;
        var port = ExternalProcess.FreePort();
        var arguments = new List<string>
        {
            dll, $"--urls=http://127.0.0.1:{port}", $"--Parley:Cluster:NodeId={nodeId}",
            $"--Parley:Demo:ApiKey={ApiKey}", "--Parley:Demo:PrintBanner=false",
            $"--Parley:Agents:Path={agentsFolder}", "--Parley:Agents:Watch=false",
            "--Parley:Streaming:HeartbeatSeconds=0.5", "--Logging:LogLevel:Default=Warning",
        };
        arguments.AddRange(settings);
        var output = new ConcurrentQueue<string>();
        var process = ExternalProcess.Start("dotnet", arguments, new Dictionary<string, string> { ["DOTNET_gcServer"] = "0" },
            line => { output.Enqueue(line); while (output.Count > 200) output.TryDequeue(out _); }, folder);
        var address = new Uri($"http://127.0.0.1:{port}");
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"Parley node {nodeId} exited with {process.ExitCode}:\n{string.Join('\n', output)}");
            try
            {
                if ((await http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK)
                    return new ParleyNode(process, folder, address, nodeId, output);
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        process.Kill(entireProcessTree: true);
        throw new TimeoutException($"Parley node {nodeId} did not become healthy within 90 s:\n{string.Join('\n', output)}");
    }

    /// <summary>Ends the process at once with SIGKILL, as a crash would: no shutdown code runs.</summary>
    public async Task KillAsync()
    {
        if (_process.HasExited) return;
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await KillAsync();
        _process.Dispose();
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
