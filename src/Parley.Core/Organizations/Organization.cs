namespace Parley.Core.Organizations;

/// <summary>A tenant. Owns API keys, agents and threads; nothing is visible across organizations.</summary>
/// <param name="Id">Organization id (UUID).</param>
/// <param name="Name">Display name.</param>
/// <param name="CreatedAt">When it was created (UTC).</param>
/// <param name="TokenBudget">Total tokens its runs may use, or null for no limit. When usage reaches it, messages are refused with 402.</param>
public sealed record Organization(Guid Id, string Name, DateTimeOffset CreatedAt, long? TokenBudget = null);
