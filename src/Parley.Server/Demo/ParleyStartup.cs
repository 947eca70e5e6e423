using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Parley.Core.Agents;
using Parley.Core.Agents.Tools;
using Parley.Core.Models;
using Parley.Core.Organizations;
using Parley.Core.Storage;
using Parley.Storage.Sqlite;

namespace Parley.Server.Demo;

/// <summary>
/// Runs before the server accepts requests: makes sure the default organization exists, loads the agent files into
/// it, creates the demo API key, and once the server listens prints where it is and how to call it.
/// </summary>
public sealed partial class ParleyStartup(
    IOrganizationStore organizations,
    IAgentStore agentStore,
    IPublishableKeyStore publishableKeys,
    AgentCatalog catalog,
    ModelCatalog models,
    IServiceProvider services,
    IOptions<DemoOptions> demoOptions,
    IOptions<AgentFileOptions> agentOptions,
    IHostEnvironment environment,
    IHostApplicationLifetime lifetime,
    IServer server,
    ILogger<ParleyStartup> logger) : IHostedService
{
    /// <summary>The default organization: file agents and the demo key belong to it.</summary>
    public static readonly Guid DefaultOrganizationId = Guid.Parse("00000000-0000-4000-8000-00000000d3e0");

    /// <summary>The agents folder in use (resolved at start).</summary>
    public string AgentsFolder { get; private set; } = "";

    /// <summary>The agents loaded at start.</summary>
    public IReadOnlyList<AgentFileResult> LoadedAgents { get; private set; } = [];

    /// <summary>The demo's publishable key (the start page's widget uses it), or null when the demo is off or has no agent.</summary>
    public PublishableKey? DemoPublishableKey { get; private set; }

    /// <summary>The name of the demo's publishable key.</summary>
    public const string DemoPublishableKeyName = "demo";

    /// <inheritdoc />
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await organizations.EnsureOrganizationAsync(new Organization(DefaultOrganizationId, "Default organization", DateTimeOffset.UtcNow), cancellationToken);
        AgentsFolder = ResolveAgentsFolder();
        var loaded = (await catalog.LoadFolderAsync(DefaultOrganizationId, AgentsFolder, cancellationToken)).ToList();
        Log.AgentsLoaded(logger, loaded.Count(r => r.Error is null), AgentsFolder);
        if (demoOptions.Value.Enabled && (demoOptions.Value.Model ?? models.Names.FirstOrDefault()) is { } model)
            loaded.Add(await PublishDemoAssistantAsync(model, cancellationToken));
        LoadedAgents = loaded;

        if (!demoOptions.Value.Enabled) return;
        var key = DemoKey();
        await organizations.AddApiKeyAsync(new ApiKey(Guid.CreateVersion7(), DefaultOrganizationId, "demo", ApiKeyHasher.Hash(key), DateTimeOffset.UtcNow, null), cancellationToken);
        DemoPublishableKey = await EnsureDemoPublishableKeyAsync(cancellationToken);
        if (demoOptions.Value.PrintBanner)
            lifetime.ApplicationStarted.Register(() => PrintBanner(key));
    }

    /// <summary>
    /// Reuses the demo publishable key when its agent and origins are still the configured ones, else revokes it and
    /// creates another, so a changed <c>Parley:Demo:WidgetOrigins</c> takes effect at the next start.
    /// </summary>
    private async Task<PublishableKey?> EnsureDemoPublishableKeyAsync(CancellationToken cancellationToken)
    {
        var demo = demoOptions.Value;
        var agentId = demo.WidgetAgentId
            ?? LoadedAgents.FirstOrDefault(a => a.Agent?.Id == LeadQualifierId)?.Agent?.Id
            ?? LoadedAgents.FirstOrDefault(a => a.Agent is not null)?.Agent?.Id;
        if (agentId is not { } agent) return null;
        var origins = new List<string> { PublishableKeys.SelfOrigin };
        foreach (var configured in demo.WidgetOrigins)
        {
            var origin = PublishableKeys.NormalizeOrigin(configured)
                ?? throw new InvalidOperationException($"Parley:Demo:WidgetOrigins: '{configured}' is not an origin such as https://example.com.");
            if (!origins.Contains(origin)) origins.Add(origin);
        }
        var existing = await publishableKeys.ListPublishableKeysAsync(DefaultOrganizationId, cancellationToken);
        PublishableKey? current = null;
        foreach (var key in existing.Where(k => k.Name == DemoPublishableKeyName && k.RevokedAt is null))
        {
            if (current is null && key.AgentId == agent && key.AllowedOrigins.SequenceEqual(origins)) current = key;
            else await publishableKeys.RevokePublishableKeyAsync(DefaultOrganizationId, key.Id, DateTimeOffset.UtcNow, cancellationToken);
        }
        if (current is not null) return current;
        current = new PublishableKey(Guid.CreateVersion7(), DefaultOrganizationId, agent, DemoPublishableKeyName, PublishableKeys.GenerateKey(),
            origins, PublishableKeys.GenerateTokenSecret(), DateTimeOffset.UtcNow, null);
        await publishableKeys.AddPublishableKeyAsync(current, cancellationToken);
        return current;
    }

    /// <summary>The id of the shipped demo FLOW agent, <c>Lead qualifier</c> (agents/lead-qualifier.yaml).</summary>
    public static readonly Guid LeadQualifierId = Guid.Parse("3f1c9a52-7d2e-4b8a-9c41-5e0d6b7a8c10");

    /// <summary>The demo PROMPT agent's id (offered when a model is configured).</summary>
    public static readonly Guid DemoAssistantId = Guid.Parse("5b0e7d2c-4a1f-4c3e-9d8b-2f6a7c1e0d94");

    private async Task<AgentFileResult> PublishDemoAssistantAsync(string model, CancellationToken cancellationToken)
    {
        var definition = new AgentDefinition
        {
            Id = DemoAssistantId,
            Name = "Assistant",
            Description = $"Demo PROMPT agent answering with the model '{model}'.",
            Mode = AgentMode.PROMPT,
            Model = model,
            SmsMaxTokens = 512,
            Instructions = """
                You are the assistant in a website's chat window. Answer briefly and kindly, in plain text without markdown.
                When the user tells you their name or email, remember it with set_variable. When they say goodbye, end the
                conversation. When they ask for a person, hand off.
                """,
            Tools =
            [
                new ToolDefinition { Type = BuiltInTools.SetVariable },
                new ToolDefinition { Type = BuiltInTools.EndConversation },
                new ToolDefinition { Type = BuiltInTools.HandOff },
            ],
        };
        var (agent, version, _) = await agentStore.PublishAsync(DefaultOrganizationId, DemoAssistantId, definition, AgentFiles.ContentHash(definition), cancellationToken);
        return new AgentFileResult("(built in)", agent, version, false, null);
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The configured agents folder, or <c>agents</c> in the working folder when it exists, or the shipped demo agents.</summary>
    internal string ResolveAgentsFolder()
    {
        if (!string.IsNullOrWhiteSpace(agentOptions.Value.Path))
            return Path.GetFullPath(agentOptions.Value.Path, environment.ContentRootPath);
        var local = Path.Combine(environment.ContentRootPath, "agents");
        return Directory.Exists(local) ? local : Path.Combine(AppContext.BaseDirectory, "agents");
    }

    private string DemoKey()
    {
        if (!string.IsNullOrWhiteSpace(demoOptions.Value.ApiKey)) return demoOptions.Value.ApiKey.Trim();
        // Beside the SQLite file; on PostgreSQL (no SQLite store) in the working folder.
        var dataSource = services.GetService<SqliteStore>()?.DataSource;
        var folder = Path.GetDirectoryName(Path.GetFullPath(dataSource is null or "" or ":memory:" ? "parley.db" : dataSource))!;
        var file = Path.Combine(folder, "parley-demo-key.txt");
        if (File.Exists(file) && File.ReadAllText(file).Trim() is { Length: > 0 } saved) return saved;
        var key = ApiKeyHasher.Generate();
        File.WriteAllText(file, key + Environment.NewLine);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return key;
    }

    private void PrintBanner(string key)
    {
        var url = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://localhost:5000";
        url = url.Replace("://[::]", "://localhost").Replace("://0.0.0.0", "://localhost").Replace("://+", "://localhost").Replace("://*", "://localhost");
        var lines = new List<string>
        {
            "",
            "  Parley is running.",
            $"    URL:           {url}",
            $"    API reference: {url}/docs",
            $"    Demo API key:  {key}   (secret: for servers, never for web pages)",
            $"    Agents ({AgentsFolder}):",
        };
        foreach (var agent in LoadedAgents)
            lines.Add(agent.Agent is { } a
                ? $"      {a.Id}  {a.Name} ({agent.Version!.Definition.Mode}, version {agent.Version.Version})"
                : $"      (skipped) {agent.Error}");
        if (DemoPublishableKey is { } widget)
        {
            lines.Add($"    Chat widget:   open {url}/ in a browser (publishable key {widget.Key}, agent {widget.AgentId})");
        }
        lines.Add("");
        lines.Add("  Try it:");
        lines.Add($"    curl -s -X POST {url}/api/v1/threads/web -H 'X-API-Key: {key}' -H 'Content-Type: application/json' \\");
        lines.Add($"      -d '{{\"agentId\": \"{LoadedAgents.FirstOrDefault(a => a.Agent is not null)?.Agent!.Id}\"}}'");
        lines.Add("");
        Console.Out.WriteLine(string.Join(Environment.NewLine, lines));
        Console.Out.Flush();
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Loaded {Count} agents from {Folder}")]
        public static partial void AgentsLoaded(ILogger logger, int count, string folder);
    }
}
