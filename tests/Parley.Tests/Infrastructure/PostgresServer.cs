using Npgsql;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL cluster for the tests: initdb into a temp folder, pg_ctl start on a free loopback port with
/// fsync off, stopped and deleted on dispose. initdb refuses to run as root, so as root it runs as the postgres user
/// (shared/DEPENDENCIES.md). Where the binaries are missing, <see cref="SkipReason"/> says so and tests skip with it.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private string? _bin;
    private string? _data;
    private string? _sockets;
    private int _databases;

    public int Port { get; private set; }

    /// <summary>Why PostgreSQL tests cannot run here, or null.</summary>
    public string? SkipReason { get; private set; }

    /// <summary>Connection string of the server's default database.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true;Maximum Pool Size=50";

    public static string? FindBin()
    {
        if (!Directory.Exists("/usr/lib/postgresql")) return null;
        return Directory.GetDirectories("/usr/lib/postgresql")
            .Select(d => Path.Combine(d, "bin"))
            .Where(b => File.Exists(Path.Combine(b, "initdb")) && File.Exists(Path.Combine(b, "pg_ctl")))
            .OrderByDescending(b => int.TryParse(Path.GetFileName(Path.GetDirectoryName(b)), out var v) ? v : 0)
            .FirstOrDefault();
    }

    public async ValueTask InitializeAsync()
    {
        _bin = FindBin();
        if (_bin is null)
        {
            SkipReason = "PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin): install the 'postgresql' Debian package (.ci/run does) to run the PostgreSQL tests.";
            return;
        }
        if (ExternalProcess.IsRoot && !File.Exists("/usr/sbin/runuser") && !File.Exists("/usr/bin/runuser") && !File.Exists("/sbin/runuser"))
        {
            SkipReason = "Running as root without runuser: initdb refuses root, so the PostgreSQL tests cannot start a cluster.";
            return;
        }
        _data = Directory.CreateTempSubdirectory("parley-pg-data-").FullName;
        _sockets = Directory.CreateTempSubdirectory("parley-pg-sock-").FullName;
        var user = ExternalProcess.IsRoot ? "postgres" : null;
        if (user is not null)
            await ExternalProcess.RunAsync("chown", ["postgres", _data, _sockets]);
        await ExternalProcess.RunAsync(Path.Combine(_bin, "initdb"), ["-D", _data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"], user, TimeSpan.FromMinutes(2));
        Port = ExternalProcess.FreePort();
        await ExternalProcess.RunAsync(Path.Combine(_bin, "pg_ctl"),
            ["-D", _data, "-l", Path.Combine(_data, "server.log"), "-w", "-t", "60", "-o",
             $"-c listen_addresses=127.0.0.1 -p {Port} -k {_sockets} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400", "start"],
            user, TimeSpan.FromMinutes(2));
    }

    /// <summary>Creates a new empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"parley_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..40];
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await create.ExecuteNonQueryAsync();
        return $"Host=127.0.0.1;Port={Port};Username=postgres;Database={name};Maximum Pool Size=40";
    }

    public async ValueTask DisposeAsync()
    {
        if (_bin is not null && _data is not null && Port != 0)
        {
            NpgsqlConnection.ClearAllPools();
            try
            {
                await ExternalProcess.RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", _data, "-m", "immediate", "-w", "-t", "30", "stop"],
                    ExternalProcess.IsRoot ? "postgres" : null, TimeSpan.FromMinutes(1));
            }
            catch (Exception) { /* the folder goes anyway; a stuck server dies with the machine */ }
        }
        foreach (var folder in new[] { _data, _sockets })
            if (folder is not null)
                try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
