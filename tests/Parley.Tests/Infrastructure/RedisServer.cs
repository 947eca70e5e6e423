using System.Diagnostics;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// A throwaway redis-server on a free loopback port (no persistence), a child process ended by its PID. It can be
/// stopped and started again on the same port to test a Redis outage. Where the binary is missing,
/// <see cref="SkipReason"/> says so.
/// </summary>
public sealed class RedisServer : IAsyncLifetime
{
    private Process? _process;
    private string? _binary;

    public int Port { get; private set; }

    public string? SkipReason { get; private set; }

    public string Configuration => $"127.0.0.1:{Port},abortConnect=false,connectRetry=10,connectTimeout=2000";

    public async ValueTask InitializeAsync()
    {
        _binary = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);
        if (_binary is null)
        {
            SkipReason = "redis-server is not installed: install the 'redis-server' Debian package (.ci/run does) to run the Redis tests.";
            return;
        }
        Port = ExternalProcess.FreePort();
        await StartAsync();
    }

    public async Task StartAsync()
    {
        _process = ExternalProcess.Start(_binary!, ["--bind", "127.0.0.1", "--port", Port.ToString(), "--save", "", "--appendonly", "no", "--daemonize", "no"]);
        await ExternalProcess.WaitForPortAsync(Port, TimeSpan.FromSeconds(20), () => _process.HasExited);
    }

    /// <summary>Ends the server at once (SIGKILL by PID), as a crash would.</summary>
    public async Task StopAsync()
    {
        if (_process is null) return;
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
