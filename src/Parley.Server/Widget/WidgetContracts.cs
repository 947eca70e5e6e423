using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Server.Widget;

/// <summary>Body of <c>POST /api/v1/publishable-keys</c>.</summary>
/// <param name="AgentId">The agent its threads talk to (UUID), required.</param>
/// <param name="AllowedOrigins">Origins that may use it (<c>https://example.com</c>, or <c>self</c> for pages of this server), 1 to 50, required.</param>
/// <param name="Name">A label, optional (default <c>widget</c>), at most 200 characters.</param>
public sealed record CreatePublishableKeyRequest(Guid AgentId, IReadOnlyList<string> AllowedOrigins, string? Name);

/// <summary>A publishable key as the API shows it (its token secret is never shown).</summary>
/// <param name="Id">Key id (UUID).</param>
/// <param name="Key">The key to put in the page: <c>pub_...</c>.</param>
/// <param name="Name">Its label.</param>
/// <param name="AgentId">The agent its threads talk to (UUID).</param>
/// <param name="AllowedOrigins">Normalized origins.</param>
/// <param name="CreatedAt">ISO 8601 UTC.</param>
/// <param name="RevokedAt">ISO 8601 UTC, or null while valid.</param>
public sealed record PublishableKeyView(string Id, string Key, string Name, string AgentId, IReadOnlyList<string> AllowedOrigins, string CreatedAt, string? RevokedAt);

/// <summary><c>{"publishableKey": {...}}</c>.</summary>
/// <param name="PublishableKey">The key.</param>
public sealed record PublishableKeyResponse(PublishableKeyView PublishableKey);

/// <summary><c>{"publishableKeys": [...]}</c>, oldest first.</summary>
/// <param name="PublishableKeys">The organization's keys, revoked ones included.</param>
public sealed record PublishableKeyList(IReadOnlyList<PublishableKeyView> PublishableKeys);

/// <summary>Source-generated JSON of the widget endpoints: camelCase, nulls written.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(CreatePublishableKeyRequest))]
[JsonSerializable(typeof(PublishableKeyResponse))]
[JsonSerializable(typeof(PublishableKeyList))]
public sealed partial class WidgetJsonContext : JsonSerializerContext;
