namespace Parley.Core.Organizations;

/// <summary>A tenant. Owns API keys, agents and threads; nothing is visible across organizations.</summary>
/// <param name="Id">Organization id (UUID).</param>
/// <param name="Name">Display name.</param>
/// <param name="CreatedAt">When it was created (UTC).</param>
public sealed record Organization(Guid Id, string Name, DateTimeOffset CreatedAt);
