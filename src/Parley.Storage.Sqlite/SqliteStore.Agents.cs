using System.Text.Json;
using Microsoft.Data.Sqlite;
using Parley.Core.Agents;
using Parley.Core.Storage;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore : IAgentStore
{
    private const string AgentColumns = "id, organization_id, name, description, agent_type, current_version_id, created_at, updated_at";
    private const string VersionColumns = "id, agent_id, version, definition, content_hash, created_at";

    /// <inheritdoc />
    public Task<(Agent Agent, AgentVersion Version, bool Published)> PublishAsync(Guid organizationId, Guid agentId, AgentDefinition definition, string contentHash, CancellationToken cancellationToken = default) =>
        WriteAsync<(Agent, AgentVersion, bool)>((connection, tx) =>
        {
            var now = _time.GetUtcNow();
            var agent = ReadAgent(connection, agentId, tx);
            if (agent is not null && agent.OrganizationId != organizationId)
                throw new InvalidOperationException($"Agent {agentId} belongs to another organization.");
            var current = agent is null ? null : ReadVersion(connection, agent.CurrentVersionId, tx);
            if (agent is not null && current is not null && current.ContentHash == contentHash)
                return ((agent, current, false), []);

            var version = new AgentVersion(Guid.CreateVersion7(now), agentId, (current?.Version ?? 0) + 1, definition, contentHash, now);
            var updated = new Agent(agentId, organizationId, definition.Name, definition.Description, definition.AgentType, version.Id, agent?.CreatedAt ?? now, now);
            // The agent row references its current version and the version references the agent: write the agent first
            // with foreign keys deferred to the end of the transaction.
            using (var defer = Command(connection, "PRAGMA defer_foreign_keys=ON", tx)) defer.ExecuteNonQuery();
            using (var upsert = Command(connection, $"""
                INSERT INTO agents ({AgentColumns}) VALUES ($id, $org, $name, $description, $type, $version, $created, $updated)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, agent_type = excluded.agent_type,
                    current_version_id = excluded.current_version_id, updated_at = excluded.updated_at
                """, tx,
                ("$id", Text(agentId)), ("$org", Text(organizationId)), ("$name", updated.Name), ("$description", updated.Description),
                ("$type", updated.AgentType.ToString()), ("$version", Text(version.Id)), ("$created", Text(updated.CreatedAt)), ("$updated", Text(now))))
                upsert.ExecuteNonQuery();
            using (var insert = Command(connection, $"INSERT INTO agent_versions ({VersionColumns}) VALUES ($id, $agent, $version, $definition, $hash, $created)", tx,
                ("$id", Text(version.Id)), ("$agent", Text(agentId)), ("$version", version.Version),
                ("$definition", JsonSerializer.Serialize(definition, AgentDefinition.FileJsonOptions)), ("$hash", contentHash), ("$created", Text(now))))
                insert.ExecuteNonQuery();
            return ((updated, version, true), []);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<Agent?> GetAgentAsync(Guid id, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        return Task.FromResult(ReadAgent(connection, id, null));
    }

    // Agent versions never change once published, so a version read once is kept (a few KB per version).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, AgentVersion> _versions = new();

    /// <inheritdoc />
    public Task<AgentVersion?> GetAgentVersionAsync(Guid id, CancellationToken cancellationToken = default)
    {
        if (_versions.TryGetValue(id, out var cached)) return Task.FromResult<AgentVersion?>(cached);
        using var connection = Open();
        var version = ReadVersion(connection, id, null);
        if (version is not null) _versions.TryAdd(id, version);
        return Task.FromResult(version);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<(Agent Agent, AgentVersion Version)>> ListAgentsAsync(Guid organizationId, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        using var query = Command(connection, $"SELECT {AgentColumns} FROM agents WHERE organization_id = $org ORDER BY name, id", null, ("$org", Text(organizationId)));
        var agents = new List<Agent>();
        using (var r = query.ExecuteReader())
            while (r.Read()) agents.Add(MapAgent(r));
        IReadOnlyList<(Agent, AgentVersion)> result = agents.Select(a => (a, ReadVersion(connection, a.CurrentVersionId, null)!)).ToList();
        return Task.FromResult(result);
    }

    private static Agent? ReadAgent(SqliteConnection connection, Guid id, SqliteTransaction? tx)
    {
        using var query = Command(connection, $"SELECT {AgentColumns} FROM agents WHERE id = $id", tx, ("$id", Text(id)));
        using var r = query.ExecuteReader();
        return r.Read() ? MapAgent(r) : null;
    }

    private static Agent MapAgent(SqliteDataReader r) => new(
        ReadGuid(r, 0), ReadGuid(r, 1), r.GetString(2), ReadNullableString(r, 3), Enum.Parse<AgentType>(r.GetString(4)),
        ReadGuid(r, 5), ReadTime(r, 6), ReadTime(r, 7));

    private static AgentVersion? ReadVersion(SqliteConnection connection, Guid id, SqliteTransaction? tx)
    {
        using var query = Command(connection, $"SELECT {VersionColumns} FROM agent_versions WHERE id = $id", tx, ("$id", Text(id)));
        using var r = query.ExecuteReader();
        if (!r.Read()) return null;
        var definition = JsonSerializer.Deserialize<AgentDefinition>(r.GetString(3), AgentDefinition.FileJsonOptions)!;
        return new AgentVersion(ReadGuid(r, 0), ReadGuid(r, 1), r.GetInt32(2), definition, r.GetString(4), ReadTime(r, 5));
    }
}
