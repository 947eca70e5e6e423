using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Parley.Core.Agents;
using Microsoft.Extensions.Configuration;
using Parley.Core.Agents.Flow;
using Parley.Core.Agents.Prompt;
using Parley.Core.Agents.Tools;
using Parley.Core.Models;
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
        services.AddMetrics();
        services.TryAddSingleton<Diagnostics.ParleyMetrics>();
        services.TryAddSingleton<ThreadEventReader>();
        services.TryAddSingleton<ThreadEventWatcher>();
        services.TryAddSingleton<ThreadService>();
        services.TryAddSingleton<AgentCatalog>();
        services.AddOptions<RunEngineOptions>().BindConfiguration("Parley:Runs")
            .Validate(o => o.MaxConcurrentRuns > 0, "Parley:Runs:MaxConcurrentRuns must be positive.")
            .Validate(o => o.StreamBatchIntervalMs >= 0, "Parley:Runs:StreamBatchIntervalMs must not be negative.")
            .Validate(o => o.StreamBatchAboveRuns >= 0, "Parley:Runs:StreamBatchAboveRuns must not be negative.").ValidateOnStart();
        services.AddOptions<ThreadOptions>().BindConfiguration("Parley:Threads")
            .Validate(o => o.ExpirySweepSeconds > 0, "Parley:Threads:ExpirySweepSeconds must be positive.").ValidateOnStart();
        services.TryAddSingleton<IRunLeases, InProcessRunLeases>();
        services.TryAddSingleton<RunEngine>();
        services.AddHostedService(sp => sp.GetRequiredService<RunEngine>());
        services.AddHostedService<WindowExpirySweeper>();
        services.AddHttpClient(FlowRunner.WebhookClientName);
        services.AddHttpClient(ToolInvoker.WebhookClientName);
        services.TryAddSingleton<FlowRunner>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IAgentExecutor, FlowAgentExecutor>());

        services.AddOptions<ModelCatalogOptions>().Configure<IConfiguration>((options, configuration) =>
        {
            configuration.GetSection("Parley:Models").Bind(options.Models);
            // An OpenAI key in the environment is enough to get a model named "openai" (docs/models.md).
            if (!options.Models.ContainsKey("openai") && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OPENAI_API_KEY")))
                options.Models["openai"] = new ModelOptions { Provider = "openai", Model = "gpt-4o-mini", ApiKeyEnvironmentVariable = "OPENAI_API_KEY" };
        }).Validate(o => o.Models.Values.All(m => m.TimeoutSeconds > 0 && m.MaxRetries >= 0 && m.ContextTokens > 0),
            "Parley:Models: TimeoutSeconds and ContextTokens must be positive and MaxRetries not negative.").ValidateOnStart();
        services.TryAddSingleton<TokenCounter>();
        services.TryAddSingleton<ModelCatalog>();
        services.TryAddSingleton<ToolInvoker>();
        services.TryAddSingleton<ModelTurnRunner>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IAgentExecutor, PromptAgentExecutor>());
        return services;
    }
}
