namespace Parley.Core.Agents;

/// <summary>An agent of an organization. Its behaviour lives in immutable, numbered <see cref="AgentVersion"/>s.</summary>
/// <param name="Id">Agent id (UUID).</param>
/// <param name="OrganizationId">Owning organization.</param>
/// <param name="Name">Display name.</param>
/// <param name="Description">Optional description.</param>
/// <param name="AgentType">TEXT or CALL.</param>
/// <param name="CurrentVersionId">The version new threads pin.</param>
/// <param name="CreatedAt">When the agent was created (UTC).</param>
/// <param name="UpdatedAt">When the agent or its current version last changed (UTC).</param>
public sealed record Agent(
    Guid Id,
    Guid OrganizationId,
    string Name,
    string? Description,
    AgentType AgentType,
    Guid CurrentVersionId,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt);

/// <summary>One immutable version of an agent. A thread pins the version that was current when it was created.</summary>
/// <param name="Id">Version id (UUID); the thread's <c>agentVersionId</c>.</param>
/// <param name="AgentId">The agent it belongs to.</param>
/// <param name="Version">1, 2, 3… per agent.</param>
/// <param name="Definition">What the version does.</param>
/// <param name="ContentHash">SHA-256 hex of the normalized definition; a changed hash publishes a new version.</param>
/// <param name="CreatedAt">When the version was published (UTC).</param>
public sealed record AgentVersion(Guid Id, Guid AgentId, int Version, AgentDefinition Definition, string ContentHash, DateTimeOffset CreatedAt);
