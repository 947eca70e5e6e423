using System.Collections.Concurrent;
using System.Text.Json;
using Npgsql;
using Parley.Core.Agents;
using Parley.Core.Storage;

namespace Parley.Storage.Postgres;

public sealed partial class PostgresStore : IAgentStore
{
    private const string AgentColumns = "id, organization_id, name, description, agent_type, current_version_id, created_at, updated_at";
    private const string VersionColumns = "id, agent_id, version, definition, content_hash, created_at";

    /// <inheritdoc />
    public Task<(Agent Agent, AgentVersion Version, bool Published)> PublishAsync(Guid organizationId, Guid agentId, AgentDefinition definition, string contentHash, CancellationToken cancellationToken = default) =>
        WriteAsync<(Agent, AgentVersion, bool)>(async (connection, tx) =>
        {
            // Every node publishes its agent files at start: serialize publishers of one agent id across nodes, even
            // before the agent's row exists to be locked.
            await using (var gate = Command(connection, "SELECT pg_advisory_xact_lock(hashtextextended(@key, 0))", tx, ("key", "parley-agent:" + agentId)))
                await gate.ExecuteNonQueryAsync(cancellationToken);
            var now = Now();
            var agent = await ReadAgentAsync(connection, tx, agentId, cancellationToken);
            if (agent is not null && agent.OrganizationId != organizationId)
                throw new InvalidOperationException($"Agent {agentId} belongs to another organization.");
            var current = agent is null ? null : await ReadVersionAsync(connection, tx, agent.CurrentVersionId, cancellationToken);
            if (agent is not null && current is not null && current.ContentHash == contentHash)
                return ((agent, current, false), []);

            var version = new AgentVersion(Guid.CreateVersion7(now), agentId, (current?.Version ?? 0) + 1, definition, contentHash, now);
            var updated = new Agent(agentId, organizationId, definition.Name, definition.Description, definition.AgentType, version.Id, agent?.CreatedAt ?? now, now);
            await using (var upsert = Command(connection, $"""
                INSERT INTO agents ({AgentColumns}) VALUES (@id, @org, @name, @description, @type, @version, @created, @updated)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, agent_type = excluded.agent_type,
                    current_version_id = excluded.current_version_id, updated_at = excluded.updated_at
                """, tx,
                ("id", agentId), ("org", organizationId), ("name", updated.Name), ("description", updated.Description),
                ("type", updated.AgentType.ToString()), ("version", version.Id), ("created", updated.CreatedAt), ("updated", now)))
                await upsert.ExecuteNonQueryAsync(cancellationToken);
            await using (var insert = Command(connection, $"INSERT INTO agent_versions ({VersionColumns}) VALUES (@id, @agent, @version, @definition, @hash, @created)", tx,
                ("id", version.Id), ("agent", agentId), ("version", version.Version),
                ("definition", JsonSerializer.Serialize(definition, AgentDefinition.FileJsonOptions)), ("hash", contentHash), ("created", now)))
                await insert.ExecuteNonQueryAsync(cancellationToken);
            return ((updated, version, true), []);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<Agent?> GetAgentAsync(Guid id, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadAgentAsync(connection, null, id, cancellationToken);
    }

    // Agent versions never change once published, so a version read once is kept (a few KB per version).
    private readonly ConcurrentDictionary<Guid, AgentVersion> _versions = new();

    /// <inheritdoc />
    public async Task<AgentVersion?> GetAgentVersionAsync(Guid id, CancellationToken cancellationToken = default)
    {
        if (_versions.TryGetValue(id, out var cached)) return cached;
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        var version = await ReadVersionAsync(connection, null, id, cancellationToken);
        if (version is not null) _versions.TryAdd(id, version);
        return version;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<(Agent Agent, AgentVersion Version)>> ListAgentsAsync(Guid organizationId, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        var agents = new List<Agent>();
        await using (var query = Command(connection, $"SELECT {AgentColumns} FROM agents WHERE organization_id = @org ORDER BY name, id", null, ("org", organizationId)))
        await using (var r = await query.ExecuteReaderAsync(cancellationToken))
            while (await r.ReadAsync(cancellationToken)) agents.Add(MapAgent(r));
        var result = new List<(Agent, AgentVersion)>();
        foreach (var a in agents) result.Add((a, (await ReadVersionAsync(connection, null, a.CurrentVersionId, cancellationToken))!));
        return result;
    }

    private static async Task<Agent?> ReadAgentAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, Guid id, CancellationToken cancellationToken)
    {
        await using var query = Command(connection, $"SELECT {AgentColumns} FROM agents WHERE id = @id", tx, ("id", id));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        return await r.ReadAsync(cancellationToken) ? MapAgent(r) : null;
    }

    private static Agent MapAgent(NpgsqlDataReader r) => new(
        r.GetGuid(0), r.GetGuid(1), r.GetString(2), ReadNullableString(r, 3), Enum.Parse<AgentType>(r.GetString(4)),
        r.GetGuid(5), ReadTime(r, 6), ReadTime(r, 7));

    private static async Task<AgentVersion?> ReadVersionAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, Guid id, CancellationToken cancellationToken)
    {
        await using var query = Command(connection, $"SELECT {VersionColumns} FROM agent_versions WHERE id = @id", tx, ("id", id));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        if (!await r.ReadAsync(cancellationToken)) return null;
        var definition = JsonSerializer.Deserialize<AgentDefinition>(r.GetString(3), AgentDefinition.FileJsonOptions)!;
        return new AgentVersion(r.GetGuid(0), r.GetGuid(1), r.GetInt32(2), definition, r.GetString(4), ReadTime(r, 5));
    }
}
