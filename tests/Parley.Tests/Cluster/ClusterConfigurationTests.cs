using Microsoft.Extensions.DependencyInjection;
using Parley.Server.Hosting;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Cluster;

/// <summary>Scale-out configuration is checked at start, with messages that name the key.</summary>
public sealed class ClusterConfigurationTests(PostgresServer postgres)
{
    [Fact]
    public async Task A_node_starts_while_Redis_is_down_and_reports_itself_degraded_not_unhealthy()
    {
        if (postgres.SkipReason is { } reason) Assert.Skip(reason);
        var database = await postgres.CreateDatabaseAsync();
        var redisPort = ExternalProcess.FreePort(); // nothing listens there
        await using var app = ParleyApplication.Build(["--urls=http://127.0.0.1:0", $"--ConnectionStrings:Postgres={database}",
            $"--ConnectionStrings:Redis=127.0.0.1:{redisPort},connectTimeout=500", "--Parley:Demo:PrintBanner=false", "--Logging:LogLevel:Default=None"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(30) };

        var health = await http.GetAsync("/healthz");

        Assert.Equal(System.Net.HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("Degraded", await health.Content.ReadAsStringAsync());
        await app.StopAsync();
    }

    [Fact]
    public async Task With_a_PostgreSQL_connection_string_every_store_is_PostgreSQL_and_nothing_of_SQLite_is_registered()
    {
        if (postgres.SkipReason is { } reason) Assert.Skip(reason);
        var database = await postgres.CreateDatabaseAsync();
        IServiceCollection registered = null!;
        await using var app = ParleyApplication.Build(["--urls=http://127.0.0.1:0", $"--ConnectionStrings:Postgres={database}",
            "--Parley:Demo:PrintBanner=false", "--Logging:LogLevel:Default=None"], builder => registered = builder.Services);

        var store = app.Services.GetRequiredService<Parley.Storage.Postgres.PostgresStore>();
        Assert.Same(store, app.Services.GetRequiredService<Parley.Core.Storage.IOrganizationStore>());
        Assert.Same(store, app.Services.GetRequiredService<Parley.Core.Storage.IAgentStore>());
        Assert.Same(store, app.Services.GetRequiredService<Parley.Core.Storage.IPublishableKeyStore>());
        Assert.Same(store, app.Services.GetRequiredService<Parley.Core.Storage.IThreadStore>());
        Assert.IsType<Parley.Storage.Postgres.PostgresRunLeases>(app.Services.GetRequiredService<Parley.Core.Runs.IRunLeases>());
        // No registration comes from the SQLite assembly (types, instances or factories).
        var sqlite = typeof(Parley.Storage.Sqlite.SqliteStore).Assembly;
        Assert.False(app.Services.GetRequiredService<IServiceProviderIsService>().IsService(typeof(Parley.Storage.Sqlite.SqliteStore)));
        Assert.DoesNotContain(registered, d => new[]
        {
            d.ServiceType,
            d.IsKeyedService ? d.KeyedImplementationType : d.ImplementationType,
            (d.IsKeyedService ? d.KeyedImplementationInstance : d.ImplementationInstance)?.GetType(),
            (d.IsKeyedService ? d.KeyedImplementationFactory?.Method : d.ImplementationFactory?.Method)?.DeclaringType,
        }.Any(t => t?.Assembly == sqlite));
    }

    [Fact]
    public async Task An_unreachable_PostgreSQL_fails_the_start_with_a_message_naming_the_connection_string()
    {
        var port = ExternalProcess.FreePort(); // nothing listens there
        await using var app = ParleyApplication.Build(["--urls=http://127.0.0.1:0", $"--ConnectionStrings:Postgres=Host=127.0.0.1;Port={port};Username=parley;Timeout=5",
            "--Parley:Demo:PrintBanner=false", "--Logging:LogLevel:Default=None"]);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => app.StartAsync());

        Assert.Contains("ConnectionStrings:Postgres", error.Message);
        Assert.Contains($"port {port}", error.Message);
    }

    [Fact]
    public async Task An_empty_Redis_connection_string_fails_the_start_with_a_message_naming_it()
    {
        var folder = Directory.CreateTempSubdirectory("parley-config-").FullName;
        try
        {
            await using var app = ParleyApplication.Build(["--urls=http://127.0.0.1:0", $"--ConnectionStrings:Parley=Data Source={Path.Combine(folder, "p.db")}",
                "--ConnectionStrings:Redis= ", "--Parley:Demo:PrintBanner=false", "--Logging:LogLevel:Default=None"]);

            var error = await Assert.ThrowsAnyAsync<Exception>(() => app.StartAsync());

            Assert.Contains("ConnectionStrings:Redis must not be empty", error.Message);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(folder, recursive: true);
        }
    }
}
