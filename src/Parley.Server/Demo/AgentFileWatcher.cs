using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Parley.Core.Agents;

namespace Parley.Server.Demo;

/// <summary>
/// Watches the agents folder and reloads it when a file changes (debounced by 500 ms): a changed file publishes a new
/// agent version; threads keep the version they pinned.
/// </summary>
public sealed class AgentFileWatcher(ParleyStartup startup, AgentCatalog catalog, IOptions<AgentFileOptions> options) : BackgroundService
{
    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Watch || !Directory.Exists(startup.AgentsFolder)) return;
        using var provider = new PhysicalFileProvider(startup.AgentsFolder);
        var changed = new SemaphoreSlim(0);
        using var registration = ChangeToken.OnChange(() => provider.Watch("**/*"), () => changed.Release());
        while (!stoppingToken.IsCancellationRequested)
        {
            await changed.WaitAsync(stoppingToken);
            await Task.Delay(500, stoppingToken);
            while (changed.CurrentCount > 0) await changed.WaitAsync(stoppingToken);
            await catalog.LoadFolderAsync(ParleyStartup.DefaultOrganizationId, startup.AgentsFolder, stoppingToken);
        }
    }
}
