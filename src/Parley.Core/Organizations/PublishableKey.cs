namespace Parley.Core.Organizations;

/// <summary>
/// A browser-safe key for the web chat widget, bound to one agent and a list of allowed origins. It is public (it is
/// written into web pages), so it is stored as it is; what it can do is narrow: create threads with its agent, and read
/// or write only the threads it created, each with the thread token issued at creation
/// (<see cref="PublishableKeys.ThreadToken"/>). Tokens are HMACs keyed with <see cref="TokenSecret"/>, which never
/// leaves the server.
/// </summary>
/// <param name="Id">Key id (UUID), safe to log.</param>
/// <param name="OrganizationId">The organization the key acts for.</param>
/// <param name="AgentId">The one agent its threads talk to.</param>
/// <param name="Name">A label for people ("docs site").</param>
/// <param name="Key">The key as pages send it: <c>pub_</c> followed by 32 URL-safe base64 characters (192 bits).</param>
/// <param name="AllowedOrigins">
/// Origins allowed to use it, each normalized by <see cref="PublishableKeys.NormalizeOrigin"/> (<c>https://example.com</c>,
/// <c>http://localhost:8080</c>), or <see cref="PublishableKeys.SelfOrigin"/> for pages served by this Parley server.
/// </param>
/// <param name="TokenSecret">Base64 of 32 random bytes: the HMAC key of this key's thread tokens. Server-side only.</param>
/// <param name="CreatedAt">When it was created (UTC).</param>
/// <param name="RevokedAt">When it was revoked, or null while it is valid. A revoked key and its thread tokens stop working.</param>
public sealed record PublishableKey(
    Guid Id, Guid OrganizationId, Guid AgentId, string Name, string Key, IReadOnlyList<string> AllowedOrigins,
    string TokenSecret, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);
