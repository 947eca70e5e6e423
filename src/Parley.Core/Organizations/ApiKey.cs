namespace Parley.Core.Organizations;

/// <summary>
/// A secret API key of an organization. Only the SHA-256 hash of the key is stored; the plain key is shown once,
/// when it is created. Sent by clients as <c>X-API-Key</c>.
/// </summary>
/// <param name="Id">Key id (UUID), safe to log.</param>
/// <param name="OrganizationId">The organization the key acts for.</param>
/// <param name="Name">A label for people ("demo", "backend").</param>
/// <param name="KeyHash">Lower-case hex SHA-256 of the UTF-8 key (64 characters).</param>
/// <param name="CreatedAt">When it was created (UTC).</param>
/// <param name="RevokedAt">When it was revoked, or null while it is valid.</param>
/// <param name="AgentId">For an agent-scoped key, the one agent it may use; null for an organization key.</param>
/// <param name="RequestsPerMinute">This key's rate limit, or null for the server default (<c>Parley:RateLimits</c>).</param>
public sealed record ApiKey(
    Guid Id, Guid OrganizationId, string Name, string KeyHash, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt,
    Guid? AgentId = null, int? RequestsPerMinute = null);
