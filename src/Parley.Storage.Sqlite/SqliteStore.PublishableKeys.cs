using System.Text.Json;
using Microsoft.Data.Sqlite;
using Parley.Core;
using Parley.Core.Organizations;
using Parley.Core.Storage;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore : IPublishableKeyStore
{
    private const string PublishableKeyColumns = "id, organization_id, agent_id, name, key, allowed_origins, token_secret, created_at, revoked_at";

    /// <inheritdoc />
    public Task<bool> AddPublishableKeyAsync(PublishableKey key, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>((connection, tx) =>
        {
            using var insert = Command(connection,
                $"INSERT OR IGNORE INTO publishable_keys ({PublishableKeyColumns}) VALUES ($id, $org, $agent, $name, $key, $origins, $secret, $created, $revoked)", tx,
                ("$id", Text(key.Id)), ("$org", Text(key.OrganizationId)), ("$agent", Text(key.AgentId)), ("$name", key.Name), ("$key", key.Key),
                ("$origins", JsonSerializer.Serialize(key.AllowedOrigins.ToList(), CoreJsonContext.Payloads.ListString)),
                ("$secret", key.TokenSecret), ("$created", Text(key.CreatedAt)), ("$revoked", Text(key.RevokedAt)));
            return (insert.ExecuteNonQuery() == 1, []);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<PublishableKey?> FindPublishableKeyAsync(string key, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        using var query = Command(connection, $"SELECT {PublishableKeyColumns} FROM publishable_keys WHERE key = $key AND revoked_at IS NULL", null, ("$key", key));
        using var r = query.ExecuteReader();
        return Task.FromResult(r.Read() ? ReadPublishableKey(r) : null);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<PublishableKey>> ListPublishableKeysAsync(Guid organizationId, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        using var query = Command(connection, $"SELECT {PublishableKeyColumns} FROM publishable_keys WHERE organization_id = $org ORDER BY created_at, id", null,
            ("$org", Text(organizationId)));
        using var r = query.ExecuteReader();
        var keys = new List<PublishableKey>();
        while (r.Read()) keys.Add(ReadPublishableKey(r));
        return Task.FromResult<IReadOnlyList<PublishableKey>>(keys);
    }

    /// <inheritdoc />
    public Task<PublishableKey?> RevokePublishableKeyAsync(Guid organizationId, Guid id, DateTimeOffset at, CancellationToken cancellationToken = default) =>
        WriteAsync<PublishableKey?>((connection, tx) =>
        {
            using (var update = Command(connection,
                       "UPDATE publishable_keys SET revoked_at = $at WHERE id = $id AND organization_id = $org AND revoked_at IS NULL", tx,
                       ("$at", Text(at)), ("$id", Text(id)), ("$org", Text(organizationId))))
                update.ExecuteNonQuery();
            using var query = Command(connection, $"SELECT {PublishableKeyColumns} FROM publishable_keys WHERE id = $id AND organization_id = $org", tx,
                ("$id", Text(id)), ("$org", Text(organizationId)));
            using var r = query.ExecuteReader();
            return (r.Read() ? ReadPublishableKey(r) : null, []);
        }, cancellationToken);

    private static PublishableKey ReadPublishableKey(SqliteDataReader r) => new(
        ReadGuid(r, 0), ReadGuid(r, 1), ReadGuid(r, 2), r.GetString(3), r.GetString(4),
        JsonSerializer.Deserialize(r.GetString(5), CoreJsonContext.Payloads.ListString)!, r.GetString(6), ReadTime(r, 7), ReadNullableTime(r, 8));
}
