using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Organizations;
using Parley.Core.Runs;
using Parley.Core.Threads;

namespace Parley.Core.Storage;

/// <summary>Organizations and their API keys.</summary>
public interface IOrganizationStore
{
    /// <summary>Creates the organization when no organization has its id; returns the stored one.</summary>
    Task<Organization> EnsureOrganizationAsync(Organization organization, CancellationToken cancellationToken = default);

    /// <summary>Returns the organization, or null.</summary>
    Task<Organization?> GetOrganizationAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>Sets (or with null removes) the organization's token budget.</summary>
    Task SetTokenBudgetAsync(Guid organizationId, long? tokenBudget, CancellationToken cancellationToken = default);

    /// <summary>Stores a key. A key whose hash exists already is left as it is.</summary>
    Task AddApiKeyAsync(ApiKey key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Finds a key that is not revoked by its hash (<see cref="ApiKeyHasher.Hash"/>), or null. A store may answer from
    /// memory (<see cref="ApiKeyCache"/>): a key revoked through the same store is refused at once, one revoked through
    /// another store on the same database (another node) at most <see cref="ApiKeyCache.Lifetime"/> later.
    /// </summary>
    Task<ApiKey?> FindApiKeyByHashAsync(string keyHash, CancellationToken cancellationToken = default);

    /// <summary>
    /// Revokes the organization's key <paramref name="id"/> at <paramref name="at"/> (a revoked key stays revoked): from
    /// the moment this returns, <see cref="FindApiKeyByHashAsync"/> of this store no longer finds it.
    /// </summary>
    /// <returns>False when the organization has no such key.</returns>
    Task<bool> RevokeApiKeyAsync(Guid organizationId, Guid id, DateTimeOffset at, CancellationToken cancellationToken = default);
}

/// <summary>Publishable keys of the web chat widget (<see cref="PublishableKey"/>).</summary>
public interface IPublishableKeyStore
{
    /// <summary>Stores a key. A key whose <see cref="PublishableKey.Key"/> exists already is left as it is; returns whether it was added.</summary>
    Task<bool> AddPublishableKeyAsync(PublishableKey key, CancellationToken cancellationToken = default);

    /// <summary>Finds a key that is not revoked by its value (<c>pub_...</c>), or null.</summary>
    Task<PublishableKey?> FindPublishableKeyAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>The organization's keys, revoked ones included, oldest first.</summary>
    Task<IReadOnlyList<PublishableKey>> ListPublishableKeysAsync(Guid organizationId, CancellationToken cancellationToken = default);

    /// <summary>Revokes the organization's key <paramref name="id"/> at <paramref name="at"/> (a revoked key stays revoked); returns it, or null when the organization has no such key.</summary>
    Task<PublishableKey?> RevokePublishableKeyAsync(Guid organizationId, Guid id, DateTimeOffset at, CancellationToken cancellationToken = default);
}

/// <summary>Agents and their immutable versions.</summary>
public interface IAgentStore
{
    /// <summary>
    /// Publishes <paramref name="definition"/> for the agent <paramref name="agentId"/> of <paramref name="organizationId"/>:
    /// creates the agent when it is new, adds version N+1 when <paramref name="contentHash"/> differs from the current
    /// version's, and otherwise changes nothing.
    /// </summary>
    /// <returns>The agent and its current version, and whether a version was published.</returns>
    /// <exception cref="InvalidOperationException">The agent id belongs to another organization.</exception>
    Task<(Agent Agent, AgentVersion Version, bool Published)> PublishAsync(Guid organizationId, Guid agentId, AgentDefinition definition, string contentHash, CancellationToken cancellationToken = default);

    /// <summary>Returns the agent, or null.</summary>
    Task<Agent?> GetAgentAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>Returns the version, or null.</summary>
    Task<AgentVersion?> GetAgentVersionAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>The organization's agents with their current versions, by name.</summary>
    Task<IReadOnlyList<(Agent Agent, AgentVersion Version)>> ListAgentsAsync(Guid organizationId, CancellationToken cancellationToken = default);
}

/// <summary>
/// Threads, their messages and runs, and the per-thread append-only event log. Every write goes through
/// <see cref="CreateThreadAsync"/> or <see cref="UpdateThreadAsync{TResult}(Guid, Func{ThreadChange, TResult}, CancellationToken)"/>, is atomic, and publishes the
/// events it appended to the <see cref="IThreadEventBus"/> after it commits.
/// </summary>
public interface IThreadStore
{
    /// <summary>Stores a new thread with the events of <paramref name="change"/> (built on the new thread with LastSequence 0).</summary>
    Task CreateThreadAsync(ThreadChange change, CancellationToken cancellationToken = default);

    /// <summary>Returns the thread, or null.</summary>
    Task<ChatThread?> GetThreadAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Reads the thread under its write lock, calls <paramref name="decide"/> with a <see cref="ThreadChange"/> of it,
    /// and commits what the change holds (nothing when it is empty). <paramref name="decide"/> must not do I/O; it may
    /// throw to abort, and then nothing is written.
    /// </summary>
    /// <returns>What <paramref name="decide"/> returned.</returns>
    /// <exception cref="KeyNotFoundException">No thread has that id.</exception>
    Task<TResult> UpdateThreadAsync<TResult>(Guid threadId, Func<ThreadChange, TResult> decide, CancellationToken cancellationToken = default);

    /// <summary>
    /// <see cref="UpdateThreadAsync{TResult}(Guid, Func{ThreadChange, TResult}, CancellationToken)"/> with a hint of how
    /// urgent the write is: a store that queues writes (SQLite's group commit) commits <see cref="WritePriority.Normal"/>
    /// writes before <see cref="WritePriority.Bulk"/> ones queued earlier. Stores without a queue ignore it.
    /// </summary>
    Task<TResult> UpdateThreadAsync<TResult>(Guid threadId, Func<ThreadChange, TResult> decide, WritePriority priority, CancellationToken cancellationToken = default) =>
        UpdateThreadAsync(threadId, decide, cancellationToken);

    /// <summary>
    /// Events with sequence greater than <paramref name="afterSequence"/>, oldest first, at most <paramref name="limit"/>.
    /// Throws <see cref="ArgumentOutOfRangeException"/> for a negative <paramref name="limit"/> (SQLite would read it as
    /// no limit, PostgreSQL refuse it: every store refuses it alike).
    /// </summary>
    Task<IReadOnlyList<ThreadEvent>> ReadEventsAsync(Guid threadId, long afterSequence, int limit, CancellationToken cancellationToken = default);

    /// <summary>A page of messages, oldest first, with sequence greater than <paramref name="afterSequence"/>, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<ThreadMessage>> ListMessagesAsync(Guid threadId, long afterSequence, int limit, CancellationToken cancellationToken = default);

    /// <summary>
    /// A page of messages, <b>newest first</b>, with sequence less than <paramref name="beforeSequence"/>
    /// (<see cref="long.MaxValue"/> for the newest), at most <paramref name="limit"/>. A model turn reads its history this
    /// way, stopping when its context budget is full, so a turn costs reads in proportion to what it sends, not to the
    /// thread's length.
    /// </summary>
    Task<IReadOnlyList<ThreadMessage>> ListMessagesBeforeAsync(Guid threadId, long beforeSequence, int limit, CancellationToken cancellationToken = default);

    /// <summary>Returns the message, or null.</summary>
    Task<ThreadMessage?> GetMessageAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>Returns the run, or null.</summary>
    Task<Run?> GetRunAsync(Guid id, CancellationToken cancellationToken = default);

    /// <summary>The oldest pending run of the thread, or null.</summary>
    Task<Run?> GetNextPendingRunAsync(Guid threadId, CancellationToken cancellationToken = default);

    /// <summary>Runs that are pending or running, on any thread (used at start to recover).</summary>
    Task<IReadOnlyList<Run>> ListUnfinishedRunsAsync(CancellationToken cancellationToken = default);

    /// <summary>Token usage of the organization's runs created in [<paramref name="from"/>, <paramref name="to"/>).</summary>
    Task<OrganizationUsage> GetOrganizationUsageAsync(Guid organizationId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default);

    /// <summary>
    /// The organization's threads, newest first: those of <see cref="ThreadQuery.AgentId"/> when set, whose metadata
    /// holds every pair of <see cref="ThreadQuery.Metadata"/>, and whose id is in <see cref="ThreadQuery.Ids"/> when set.
    /// </summary>
    Task<IReadOnlyList<ChatThread>> ListThreadsAsync(ThreadQuery query, CancellationToken cancellationToken = default);

    /// <summary>The thread's runs, newest first, skipping <paramref name="offset"/>, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<Run>> ListRunsAsync(Guid threadId, int limit, int offset, CancellationToken cancellationToken = default);

    /// <summary>Deletes the thread with its messages, runs and events; false when no thread has that id.</summary>
    Task<bool> DeleteThreadAsync(Guid threadId, CancellationToken cancellationToken = default);

    /// <summary>Ids of active threads whose window ran out before <paramref name="now"/>, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<Guid>> ListExpiredThreadsAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken = default);
}

/// <summary>What <see cref="IThreadStore.ListThreadsAsync"/> returns.</summary>
/// <param name="OrganizationId">Only this organization's threads.</param>
/// <param name="AgentId">Only threads whose agent is this one (null: any, including threads with no agent yet).</param>
/// <param name="Metadata">Pairs every returned thread's metadata holds (exact match).</param>
/// <param name="Ids">Only these threads (null: any).</param>
/// <param name="Limit">At most this many.</param>
/// <param name="Offset">Skip this many.</param>
public sealed record ThreadQuery(
    Guid OrganizationId,
    Guid? AgentId,
    IReadOnlyDictionary<string, string> Metadata,
    IReadOnlyList<Guid>? Ids,
    int Limit,
    int Offset);

/// <summary>An organization's model usage over a period.</summary>
/// <param name="Runs">Runs that used a model.</param>
/// <param name="Usage">Their tokens.</param>
public sealed record OrganizationUsage(long Runs, Models.TokenUsage Usage);

/// <summary>How soon a queued write should be committed, relative to the others queued with it.</summary>
public enum WritePriority
{
    /// <summary>Someone waits for it: a user's message, a run's start or end, its first output, a cancel request.</summary>
    Normal,

    /// <summary>More output of a run that is already streaming: committed after the normal writes queued with it, so a
    /// burst of many runs' deltas does not delay the first reply of a run that just started (the concurrent-runs benchmark).</summary>
    Bulk,
}
