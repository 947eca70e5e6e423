using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Server.Demo;
using Parley.Server.Hosting;

namespace Parley.Tests.Infrastructure;

/// <summary>
/// A real Parley server on Kestrel, bound to 127.0.0.1 on a free port, with its own SQLite file in a temp folder.
/// Stop it and start another on the same folder to test a restart.
/// </summary>
public sealed class ParleyTestServer : IAsyncDisposable
{
    public const string DemoKey = "pk_test_demo_key";
    public static readonly Guid LeadQualifierId = Guid.Parse("3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10");

    private readonly WebApplication _app;

    private readonly bool _ownsFolder;

    private ParleyTestServer(WebApplication app, string folder, bool ownsFolder)
    {
        _app = app;
        Folder = folder;
        _ownsFolder = ownsFolder;
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);
        Client = CreateClient(DemoKey);
    }

    public string Folder { get; }
    public string DatabasePath => Path.Combine(Folder, "parley.db");
    public Uri BaseAddress { get; }
    public HttpClient Client { get; }
    public IServiceProvider Services => _app.Services;

    /// <summary>Starts a server. <paramref name="folder"/> reuses a previous server's data; <paramref name="agentsFolder"/> replaces the demo agents.</summary>
    public static async Task<ParleyTestServer> StartAsync(
        string? folder = null,
        string? agentsFolder = null,
        Action<WebApplicationBuilder>? configure = null,
        params string[] extraArgs)
    {
        var ownsFolder = folder is null;
        folder ??= Directory.CreateTempSubdirectory("parley-test-").FullName;
        var args = new List<string>
        {
            "--urls=http://127.0.0.1:0",
            "--environment=Development",
            $"--ConnectionStrings:Parley=Data Source={Path.Combine(folder, "parley.db")}",
            $"--Parley:Demo:ApiKey={DemoKey}",
            "--Parley:Demo:PrintBanner=false",
            "--Parley:Streaming:HeartbeatSeconds=0.5",
            "--Logging:LogLevel:Default=Warning",
            // The idle trim collects the whole process's heap, and the test process runs many hosts at once, each of
            // which sees only its own runs and events (its rules are unit-tested in IdleMemoryTrimPolicyTests).
            "--Parley:Memory:TrimWhenIdle=false",
        };
        if (agentsFolder is not null) args.Add($"--Parley:Agents:Path={agentsFolder}");
        args.AddRange(extraArgs);
        var app = ParleyApplication.Build(args.ToArray(), configure);
        await app.StartAsync();
        return new ParleyTestServer(app, folder, ownsFolder);
    }

    public HttpClient CreateClient(string? apiKey)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (apiKey is not null) client.DefaultRequestHeaders.Add("X-API-Key", apiKey);
        return client;
    }

    /// <summary>Creates another organization with a key of its own; returns a client that uses it.</summary>
    public async Task<(Guid OrganizationId, HttpClient Client)> CreateOrganizationAsync(string name)
    {
        var organizations = Services.GetRequiredService<IOrganizationStore>();
        var organization = await organizations.EnsureOrganizationAsync(new Organization(Guid.NewGuid(), name, DateTimeOffset.UtcNow));
        var key = ApiKeyHasher.Generate();
        await organizations.AddApiKeyAsync(new ApiKey(Guid.NewGuid(), organization.Id, "test", ApiKeyHasher.Hash(key), DateTimeOffset.UtcNow, null));
        return (organization.Id, CreateClient(key));
    }

    /// <summary>Row counts of the tables a request may write, read straight from the database file.</summary>
    public (long Threads, long Messages, long Runs, long Events) CountRows()
    {
        var counts = Count("SELECT COUNT(*) FROM threads", "SELECT COUNT(*) FROM messages", "SELECT COUNT(*) FROM runs", "SELECT COUNT(*) FROM thread_events");
        return (counts[0], counts[1], counts[2], counts[3]);
    }

    /// <summary>Rows of the event log that hold several deltas (SqliteStore.EventInserter), read straight from the database file.</summary>
    public long CountPackedEventRows() => Count("SELECT COUNT(*) FROM thread_events WHERE last_sequence IS NOT NULL")[0];

    // The results of COUNT queries, on one read-only connection to the database file.
    private long[] Count(params string[] queries)
    {
        using var connection = new SqliteConnection($"Data Source={DatabasePath};Mode=ReadOnly;Pooling=False");
        connection.Open();
        return queries.Select(sql =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = sql;
            return (long)command.ExecuteScalar()!;
        }).ToArray();
    }

    public async Task StopAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Client.Dispose();
    }

    /// <summary>Stops the server and deletes the data folder when this server created it.</summary>
    public async ValueTask DisposeAsync()
    {
        try { await StopAsync(); } catch (ObjectDisposedException) { }
        if (_ownsFolder)
        {
            try { Directory.Delete(Folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
