using Microsoft.Data.Sqlite;
using Parley.Core;
using Parley.Core.Organizations;
using Parley.Core.Storage;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore : IOrganizationStore
{
    /// <inheritdoc />
    public Task<Organization> EnsureOrganizationAsync(Organization organization, CancellationToken cancellationToken = default) =>
        WriteAsync<Organization>((connection, tx) =>
        {
            OrganizationWritten();
            using (var insert = Command(connection, "INSERT OR IGNORE INTO organizations (id, name, created_at) VALUES ($id, $name, $created)", tx,
                       ("$id", Text(organization.Id)), ("$name", organization.Name), ("$created", Text(organization.CreatedAt))))
                insert.ExecuteNonQuery();
            return (ReadOrganization(connection, organization.Id, tx)!, []);
        }, cancellationToken);

    /// <inheritdoc />
    /// <remarks>
    /// Organizations read here are kept for <see cref="OrganizationLifetimeMs"/>: every message checks its
    /// organization's token budget, and the read was a visible share of a POST in the ingest benchmark. A commit of this
    /// store that may change an organization's row (its budget, its runs' usage: the running total's triggers) drops them
    /// all at once, so what this store wrote is seen by the next read; a change by another process on the same file is
    /// seen at most <see cref="OrganizationLifetimeMs"/> later, or at once when this store's writer noticed it first.
    /// </remarks>
    public Task<Organization?> GetOrganizationAsync(Guid id, CancellationToken cancellationToken = default)
    {
        if (_organizations.TryGet(id, out var kept)) return Task.FromResult<Organization?>(kept);
        var generation = _organizations.Generation;
        Organization? organization;
        using (var connection = Open())
            organization = ReadOrganization(connection, id, null);
        if (organization is not null) _organizations.Add(id, organization, generation);
        return Task.FromResult(organization);
    }

    /// <summary>How long an organization read is used (ms) unless this store changes organizations first.</summary>
    internal const int OrganizationLifetimeMs = 1000;

    private readonly ExpiringCache<Guid, Organization> _organizations = new(TimeSpan.FromMilliseconds(OrganizationLifetimeMs), maxEntries: 10_000);

    // Writer thread only: a write of the open transaction may have changed an organization's row.
    private bool _organizationsWritten;

    /// <summary>Writer thread: the current write may change an organization's row (dropped from memory after the commit).</summary>
    private void OrganizationWritten() => _organizationsWritten = true;

    /// <summary>Writer thread: the transaction ended (committed or not); organizations it may have changed are read again.</summary>
    private void OrganizationWritesEnded(bool committed)
    {
        if (committed && _organizationsWritten) OrganizationsChanged();
        _organizationsWritten = false;
    }

    /// <summary>Organizations may have changed (committed): every kept one is read again.</summary>
    private void OrganizationsChanged() => _organizations.Invalidate();

    /// <summary>True when saving <paramref name="run"/> may change its organization's running token total (the triggers of migration 6).</summary>
    private static bool MayChangeTokensUsed(Core.Runs.Run run) => run.Usage is not null || run.Status != Core.Runs.RunStatus.pending;

    /// <inheritdoc />
    public Task SetTokenBudgetAsync(Guid organizationId, long? tokenBudget, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>((connection, tx) =>
        {
            OrganizationWritten();
            using var update = Command(connection, "UPDATE organizations SET token_budget = $budget WHERE id = $id", tx,
                ("$budget", tokenBudget), ("$id", Text(organizationId)));
            return (update.ExecuteNonQuery() == 1, []);
        }, cancellationToken);

    /// <inheritdoc />
    public Task AddApiKeyAsync(ApiKey key, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>((connection, tx) =>
        {
            using var insert = Command(connection,
                """
            INSERT OR IGNORE INTO api_keys (id, organization_id, name, key_hash, created_at, revoked_at, agent_id, requests_per_minute)
            VALUES ($id, $org, $name, $hash, $created, $revoked, $agent, $rpm)
            """, tx,
                ("$id", Text(key.Id)), ("$org", Text(key.OrganizationId)), ("$name", key.Name), ("$hash", key.KeyHash),
                ("$created", Text(key.CreatedAt)), ("$revoked", Text(key.RevokedAt)), ("$agent", Text(key.AgentId)), ("$rpm", key.RequestsPerMinute));
            return (insert.ExecuteNonQuery() == 1, []);
        }, cancellationToken);

    private readonly ApiKeyCache _apiKeys = new(ApiKeyCache.DefaultLifetime);

    /// <inheritdoc />
    public async Task<bool> RevokeApiKeyAsync(Guid organizationId, Guid id, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        try
        {
            return await WriteAsync<bool>((connection, tx) =>
            {
                using var update = Command(connection, "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $at) WHERE id = $id AND organization_id = $org", tx,
                    ("$at", Text(at)), ("$id", Text(id)), ("$org", Text(organizationId)));
                return (update.ExecuteNonQuery() == 1, []);
            }, cancellationToken);
        }
        finally
        {
            _apiKeys.Revoked(id); // after the commit, whatever its outcome: nothing stale stays
        }
    }

    /// <inheritdoc />
    public Task<ApiKey?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken = default)
    {
        if (_apiKeys.TryGet(keyHash, out var known)) return Task.FromResult<ApiKey?>(known);
        var generation = _apiKeys.Generation;
        using var connection = Open();
        using var query = Command(connection,
            "SELECT id, organization_id, name, key_hash, created_at, revoked_at, agent_id, requests_per_minute FROM api_keys WHERE key_hash = $hash AND revoked_at IS NULL", null,
            ("$hash", keyHash));
        using var r = query.ExecuteReader();
        if (!r.Read()) return Task.FromResult<ApiKey?>(null);
        var key = new ApiKey(ReadGuid(r, 0), ReadGuid(r, 1), r.GetString(2), r.GetString(3), ReadTime(r, 4), ReadNullableTime(r, 5),
            ReadNullableGuid(r, 6), r.IsDBNull(7) ? null : r.GetInt32(7));
        // The lookup is by an unpredictable hash; the constant-time comparison guards against a collation surprise.
        if (!ApiKeyHasher.HashesEqual(key.KeyHash, keyHash)) return Task.FromResult<ApiKey?>(null);
        _apiKeys.Add(key, generation);
        return Task.FromResult<ApiKey?>(key);
    }

    private static Organization? ReadOrganization(SqliteConnection connection, Guid id, SqliteTransaction? tx)
    {
        using var query = Command(connection, "SELECT id, name, created_at, token_budget, tokens_used FROM organizations WHERE id = $id", tx, ("$id", Text(id)));
        using var r = query.ExecuteReader();
        return r.Read() ? new Organization(ReadGuid(r, 0), r.GetString(1), ReadTime(r, 2), r.IsDBNull(3) ? null : r.GetInt64(3), r.GetInt64(4)) : null;
    }
}
