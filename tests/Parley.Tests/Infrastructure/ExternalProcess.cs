using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Parley.Tests.Infrastructure;

/// <summary>Runs a command to completion with a bound; starts long-lived children that are ended by their PID.</summary>
public static class ExternalProcess
{
    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Runs <paramref name="file"/>, as <paramref name="asUser"/> (via runuser) when we are root; throws with its output when it fails.</summary>
    public static async Task<string> RunAsync(string file, IEnumerable<string> arguments, string? asUser = null, TimeSpan? timeout = null)
    {
        var info = Info(file, arguments, asUser);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish within {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds} s");
        }
        var output = await stdout + await stderr;
        if (process.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {output}");
        return output;
    }

    /// <summary>Starts a long-running child whose output is discarded (or forwarded to <paramref name="onLine"/>).</summary>
    public static Process Start(string file, IEnumerable<string> arguments, IDictionary<string, string>? environment = null, Action<string>? onLine = null, string? workingDirectory = null)
    {
        var info = Info(file, arguments, null);
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        if (environment is not null)
            foreach (var (name, value) in environment) info.Environment[name] = value;
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is { } line) onLine?.Invoke(line); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) onLine?.Invoke(line); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static ProcessStartInfo Info(string file, IEnumerable<string> arguments, string? asUser)
    {
        var runAs = asUser is not null && IsRoot;
        var info = new ProcessStartInfo(runAs ? "runuser" : file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (runAs)
        {
            info.ArgumentList.Add("-u");
            info.ArgumentList.Add(asUser!);
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(file);
        }
        foreach (var argument in arguments) info.ArgumentList.Add(argument);
        return info;
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Waits until something accepts TCP connections on 127.0.0.1:<paramref name="port"/>.</summary>
    public static async Task WaitForPortAsync(int port, TimeSpan timeout, Func<bool>? hasExited = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (hasExited?.Invoke() == true) throw new InvalidOperationException($"The server for port {port} exited during start.");
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) { await Task.Delay(50); }
        }
        throw new TimeoutException($"Nothing listened on port {port} within {timeout.TotalSeconds} s.");
    }
}
