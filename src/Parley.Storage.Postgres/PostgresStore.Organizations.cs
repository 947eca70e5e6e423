using Npgsql;
using Parley.Core.Organizations;
using Parley.Core.Storage;

namespace Parley.Storage.Postgres;

public sealed partial class PostgresStore : IOrganizationStore
{
    /// <inheritdoc />
    public Task<Organization> EnsureOrganizationAsync(Organization organization, CancellationToken cancellationToken = default) =>
        WriteAsync<Organization>(async (connection, tx) =>
        {
            await using (var insert = Command(connection, "INSERT INTO organizations (id, name, created_at) VALUES (@id, @name, @created) ON CONFLICT (id) DO NOTHING", tx,
                             ("id", organization.Id), ("name", organization.Name), ("created", organization.CreatedAt)))
                await insert.ExecuteNonQueryAsync(cancellationToken);
            await using var query = Command(connection, "SELECT id, name, created_at, token_budget, tokens_used FROM organizations WHERE id = @id", tx, ("id", organization.Id));
            return ((await ReadOrganizationsAsync(query, cancellationToken))[0], []);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<Organization?> GetOrganizationAsync(Guid id, CancellationToken cancellationToken = default)
    {
        await using var query = Query("SELECT id, name, created_at, token_budget, tokens_used FROM organizations WHERE id = @id", ("id", id));
        return (await ReadOrganizationsAsync(query, cancellationToken)).FirstOrDefault();
    }

    /// <inheritdoc />
    public async Task SetTokenBudgetAsync(Guid organizationId, long? tokenBudget, CancellationToken cancellationToken = default)
    {
        await using var update = Query("UPDATE organizations SET token_budget = @budget WHERE id = @id", ("budget", tokenBudget), ("id", organizationId));
        await update.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async Task AddApiKeyAsync(ApiKey key, CancellationToken cancellationToken = default)
    {
        await using var insert = Query("""
            INSERT INTO api_keys (id, organization_id, name, key_hash, created_at, revoked_at, agent_id, requests_per_minute)
            VALUES (@id, @org, @name, @hash, @created, @revoked, @agent, @rpm)
            ON CONFLICT DO NOTHING
            """,
            ("id", key.Id), ("org", key.OrganizationId), ("name", key.Name), ("hash", key.KeyHash), ("created", key.CreatedAt),
            ("revoked", key.RevokedAt), ("agent", key.AgentId), ("rpm", key.RequestsPerMinute));
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private readonly ApiKeyCache _apiKeys = new(ApiKeyCache.DefaultLifetime);

    /// <inheritdoc />
    public async Task<bool> RevokeApiKeyAsync(Guid organizationId, Guid id, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        try
        {
            await using var update = Query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, @at) WHERE id = @id AND organization_id = @org",
                ("at", at), ("id", id), ("org", organizationId));
            return await update.ExecuteNonQueryAsync(cancellationToken) == 1;
        }
        finally
        {
            _apiKeys.Revoked(id); // after the commit, whatever its outcome: nothing stale stays on this node
        }
    }

    /// <inheritdoc />
    public async Task<ApiKey?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken = default)
    {
        if (_apiKeys.TryGet(keyHash, out var known)) return known;
        var generation = _apiKeys.Generation;
        await using var query = Query(
            "SELECT id, organization_id, name, key_hash, created_at, revoked_at, agent_id, requests_per_minute FROM api_keys WHERE key_hash = @hash AND revoked_at IS NULL",
            ("hash", keyHash));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        if (!await r.ReadAsync(cancellationToken)) return null;
        var key = new ApiKey(r.GetGuid(0), r.GetGuid(1), r.GetString(2), r.GetString(3), ReadTime(r, 4), ReadNullableTime(r, 5),
            ReadNullableGuid(r, 6), r.IsDBNull(7) ? null : r.GetInt32(7));
        // The lookup is by an unpredictable hash; the constant-time comparison guards against a collation surprise.
        if (!ApiKeyHasher.HashesEqual(key.KeyHash, keyHash)) return null;
        _apiKeys.Add(key, generation);
        return key;
    }

    private static async Task<List<Organization>> ReadOrganizationsAsync(NpgsqlCommand query, CancellationToken cancellationToken)
    {
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var list = new List<Organization>();
        while (await r.ReadAsync(cancellationToken))
            list.Add(new Organization(r.GetGuid(0), r.GetString(1), ReadTime(r, 2), r.IsDBNull(3) ? null : r.GetInt64(3), r.GetInt64(4)));
        return list;
    }
}
