namespace Parley.Core.Organizations;

/// <summary>A tenant. Owns API keys, agents and threads; nothing is visible across organizations.</summary>
/// <param name="Id">Organization id (UUID).</param>
/// <param name="Name">Display name.</param>
/// <param name="CreatedAt">When it was created (UTC).</param>
/// <param name="TokenBudget">Total tokens its runs may use, or null for no limit. When usage reaches it, messages are refused with 402.</param>
/// <param name="TokensUsed">
/// Tokens its runs have used (input + output of every stored run with usage), a running total the stores keep in the
/// same transaction as each run's usage; ignored when an organization is created.
/// </param>
public sealed record Organization(Guid Id, string Name, DateTimeOffset CreatedAt, long? TokenBudget = null, long TokensUsed = 0);
