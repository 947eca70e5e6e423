using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Core.Agents;
using Parley.Core.Agents.Flow;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Threads;

namespace Parley.Core;

/// <summary>Registers Parley's core services.</summary>
public static class ParleyCoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers the thread service, the run engine (a hosted service), the FLOW executor, the agent catalog, the
    /// stream reader and the in-process event bus (replaceable: registered with TryAdd). A store must be added too
    /// (for example <c>AddSqliteStore()</c>).
    /// </summary>
    public static IServiceCollection AddParleyCore(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IThreadEventBus, InProcessThreadEventBus>();
        services.TryAddSingleton<ThreadEventReader>();
        services.TryAddSingleton<ThreadService>();
        services.TryAddSingleton<AgentCatalog>();
        services.AddOptions<RunEngineOptions>().BindConfiguration("Parley:Runs")
            .Validate(o => o.MaxConcurrentRuns > 0, "Parley:Runs:MaxConcurrentRuns must be positive.").ValidateOnStart();
        services.AddOptions<ThreadOptions>().BindConfiguration("Parley:Threads")
            .Validate(o => o.ExpirySweepSeconds > 0, "Parley:Threads:ExpirySweepSeconds must be positive.").ValidateOnStart();
        services.TryAddSingleton<RunEngine>();
        services.AddHostedService(sp => sp.GetRequiredService<RunEngine>());
        services.AddHostedService<WindowExpirySweeper>();
        services.AddHttpClient(FlowRunner.WebhookClientName);
        services.TryAddSingleton<FlowRunner>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IAgentExecutor, FlowAgentExecutor>());
        return services;
    }
}
