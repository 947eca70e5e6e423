using Npgsql;
using Parley.Core.Organizations;
using Parley.Core.Storage;

namespace Parley.Storage.Postgres;

public sealed partial class PostgresStore : IPublishableKeyStore
{
    private const string PublishableKeyColumns = "id, organization_id, agent_id, name, key, allowed_origins, token_secret, created_at, revoked_at";

    /// <inheritdoc />
    public async Task<bool> AddPublishableKeyAsync(PublishableKey key, CancellationToken cancellationToken = default)
    {
        // No conflict target: a key whose id or value exists already is left as it is (SqliteStore's INSERT OR IGNORE).
        await using var insert = Query($"""
            INSERT INTO publishable_keys ({PublishableKeyColumns}) VALUES (@id, @org, @agent, @name, @key, @origins, @secret, @created, @revoked)
            ON CONFLICT DO NOTHING
            """,
            ("id", key.Id), ("org", key.OrganizationId), ("agent", key.AgentId), ("name", key.Name), ("key", key.Key),
            ("origins", key.AllowedOrigins.ToArray()), ("secret", key.TokenSecret), ("created", key.CreatedAt), ("revoked", key.RevokedAt));
        return await insert.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <inheritdoc />
    public async Task<PublishableKey?> FindPublishableKeyAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var query = Query($"SELECT {PublishableKeyColumns} FROM publishable_keys WHERE key = @key AND revoked_at IS NULL", ("key", key));
        return (await ReadPublishableKeysAsync(query, cancellationToken)).FirstOrDefault();
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<PublishableKey>> ListPublishableKeysAsync(Guid organizationId, CancellationToken cancellationToken = default)
    {
        await using var query = Query($"SELECT {PublishableKeyColumns} FROM publishable_keys WHERE organization_id = @org ORDER BY created_at, id",
            ("org", organizationId));
        return await ReadPublishableKeysAsync(query, cancellationToken);
    }

    /// <inheritdoc />
    public Task<PublishableKey?> RevokePublishableKeyAsync(Guid organizationId, Guid id, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        WriteAsync<PublishableKey?>(async (connection, tx) =>
        {
            // A revoked key keeps its first revocation time.
            await using (var update = Command(connection,
                             "UPDATE publishable_keys SET revoked_at = @at WHERE id = @id AND organization_id = @org AND revoked_at IS NULL", tx,
                             ("at", at), ("id", id), ("org", organizationId)))
                await update.ExecuteNonQueryAsync(cancellationToken);
            await using var query = Command(connection, $"SELECT {PublishableKeyColumns} FROM publishable_keys WHERE id = @id AND organization_id = @org", tx,
                ("id", id), ("org", organizationId));
            return ((await ReadPublishableKeysAsync(query, cancellationToken)).FirstOrDefault(), []);
        }, cancellationToken);

    private static async Task<List<PublishableKey>> ReadPublishableKeysAsync(NpgsqlCommand query, CancellationToken cancellationToken)
    {
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var keys = new List<PublishableKey>();
        while (await r.ReadAsync(cancellationToken))
            keys.Add(new PublishableKey(r.GetGuid(0), r.GetGuid(1), r.GetGuid(2), r.GetString(3), r.GetString(4),
                r.GetFieldValue<string[]>(5), r.GetString(6), ReadTime(r, 7), ReadNullableTime(r, 8)));
        return keys;
    }
}
