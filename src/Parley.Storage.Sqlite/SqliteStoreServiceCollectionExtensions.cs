using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Core.Storage;

namespace Parley.Storage.Sqlite;

/// <summary>Registers the SQLite store.</summary>
public static class SqliteStoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="SqliteStore"/> as Parley's <see cref="IOrganizationStore"/>, <see cref="IAgentStore"/> and
    /// <see cref="IThreadStore"/>, unless a store is registered already. The database is opened and migrated when the
    /// store is first resolved (at start).
    /// </summary>
    public static IServiceCollection AddSqliteStore(this IServiceCollection services, Action<SqliteStoreOptions>? configure = null)
    {
        var options = services.AddOptions<SqliteStoreOptions>();
        if (configure is not null) options.Configure(configure);
        options.Validate(o => !string.IsNullOrWhiteSpace(o.ConnectionString), "ConnectionStrings:Parley must not be empty.")
            .Validate(o => o.WalRestartPages >= 64, "Parley:Sqlite:WalRestartPages must be at least 64.").ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<SqliteStore>();
        services.TryAddSingleton<IOrganizationStore>(sp => sp.GetRequiredService<SqliteStore>());
        services.TryAddSingleton<IAgentStore>(sp => sp.GetRequiredService<SqliteStore>());
        services.TryAddSingleton<IPublishableKeyStore>(sp => sp.GetRequiredService<SqliteStore>());
        services.TryAddSingleton<IThreadStore>(sp => sp.GetRequiredService<SqliteStore>());
        return services;
    }
}
