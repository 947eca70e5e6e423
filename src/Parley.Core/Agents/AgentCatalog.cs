using Microsoft.Extensions.Logging;
using Parley.Core.Storage;

namespace Parley.Core.Agents;

/// <summary>What loading one agent file did.</summary>
/// <param name="File">The file's path.</param>
/// <param name="Agent">The agent, or null when the file was rejected.</param>
/// <param name="Version">Its current version, or null when the file was rejected.</param>
/// <param name="Published">True when the file published a new version.</param>
/// <param name="Error">Why the file was rejected, or null.</param>
public sealed record AgentFileResult(string File, Agent? Agent, AgentVersion? Version, bool Published, string? Error);

/// <summary>Loads agent files from a folder into an organization, publishing a new version for every changed file.</summary>
public sealed partial class AgentCatalog(IAgentStore agents, ILogger<AgentCatalog> logger)
{
    /// <summary>
    /// Loads every agent file directly in <paramref name="folder"/> (sorted by name) into <paramref name="organizationId"/>.
    /// A file that fails to parse is reported and skipped; its agent keeps its current version.
    /// </summary>
    public async Task<IReadOnlyList<AgentFileResult>> LoadFolderAsync(Guid organizationId, string folder, CancellationToken cancellationToken = default)
    {
        var results = new List<AgentFileResult>();
        if (!Directory.Exists(folder)) return results;
        var files = Directory.EnumerateFiles(folder)
            .Where(f => AgentFiles.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
            results.Add(await LoadFileAsync(organizationId, file, cancellationToken));
        return results;
    }

    /// <summary>Loads one agent file; see <see cref="LoadFolderAsync"/>.</summary>
    public async Task<AgentFileResult> LoadFileAsync(Guid organizationId, string file, CancellationToken cancellationToken = default)
    {
        try
        {
            var definition = AgentFiles.Parse(Path.GetFileName(file), await File.ReadAllTextAsync(file, cancellationToken));
            var agentId = definition.Id ?? AgentFiles.DeriveAgentId(organizationId, file);
            var (agent, version, published) = await agents.PublishAsync(organizationId, agentId, definition, AgentFiles.ContentHash(definition), cancellationToken);
            if (published) Log.Published(logger, agent.Name, agent.Id, version.Version, file);
            return new AgentFileResult(file, agent, version, published, null);
        }
        catch (Exception ex) when (ex is AgentDefinitionException or IOException or InvalidOperationException)
        {
            Log.Rejected(logger, file, ex.Message);
            return new AgentFileResult(file, null, null, false, ex.Message);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Published agent {Name} ({AgentId}) version {Version} from {File}")]
        public static partial void Published(ILogger logger, string name, Guid agentId, int version, string file);

        [LoggerMessage(2, LogLevel.Error, "Agent file {File} was not loaded: {Reason}")]
        public static partial void Rejected(ILogger logger, string file, string reason);
    }
}
