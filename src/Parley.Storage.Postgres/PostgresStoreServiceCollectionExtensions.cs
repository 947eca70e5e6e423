using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Core.Runs;
using Parley.Core.Storage;

namespace Parley.Storage.Postgres;

/// <summary>Registers the PostgreSQL store.</summary>
public static class PostgresStoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="PostgresStore"/> as Parley's <see cref="IOrganizationStore"/>, <see cref="IAgentStore"/>,
    /// <see cref="IPublishableKeyStore"/> and <see cref="IThreadStore"/>, and <see cref="PostgresRunLeases"/> as <see cref="IRunLeases"/>, replacing any store
    /// registered before (call it instead of, or after, <c>AddSqliteStore()</c>). The database is migrated when the
    /// store is first resolved (at start); a missing connection string fails the start with a message.
    /// </summary>
    public static IServiceCollection AddPostgresStore(this IServiceCollection services, Action<PostgresStoreOptions>? configure = null)
    {
        var options = services.AddOptions<PostgresStoreOptions>();
        if (configure is not null) options.Configure(configure);
        options.Validate(o => !string.IsNullOrWhiteSpace(o.ConnectionString), "ConnectionStrings:Postgres must not be empty.")
            .Validate(o => o.LeaseSeconds >= 1, "Parley:Runs:LeaseSeconds must be at least 1.")
            .Validate(o => o.PollSeconds > 0, "Parley:Runs:PollSeconds must be positive.")
            .Validate(o => !string.IsNullOrWhiteSpace(o.NodeId), "Parley:Cluster:NodeId must not be empty.")
            .ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<PostgresStore>();
        services.RemoveAll<IOrganizationStore>().AddSingleton<IOrganizationStore>(sp => sp.GetRequiredService<PostgresStore>());
        services.RemoveAll<IAgentStore>().AddSingleton<IAgentStore>(sp => sp.GetRequiredService<PostgresStore>());
        services.RemoveAll<IPublishableKeyStore>().AddSingleton<IPublishableKeyStore>(sp => sp.GetRequiredService<PostgresStore>());
        services.RemoveAll<IThreadStore>().AddSingleton<IThreadStore>(sp => sp.GetRequiredService<PostgresStore>());
        services.TryAddSingleton<PostgresRunLeases>();
        services.RemoveAll<IRunLeases>().AddSingleton<IRunLeases>(sp => sp.GetRequiredService<PostgresRunLeases>());
        return services;
    }
}
