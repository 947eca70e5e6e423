using Parley.Core.Storage;

namespace Parley.Core.Runs;

/// <summary>
/// Decides which node executes a thread's next run. The default (<see cref="InProcessRunLeases"/>) is the only node
/// and simply takes the oldest pending run; a shared store (PostgreSQL) replaces it with leases in the database so
/// that one run per thread executes at a time in the whole cluster and a dead node's runs are taken over.
/// </summary>
public interface IRunLeases
{
    /// <summary>
    /// True when several nodes share the store. Then a run found <c>running</c> at start may belong to a live node
    /// (it is not failed), and <see cref="RunEngine"/> polls <see cref="ListThreadsNeedingWorkAsync"/> every
    /// <see cref="PollInterval"/> and renews the lease of each executing run every <see cref="RenewInterval"/>.
    /// </summary>
    bool IsShared { get; }

    /// <summary>How often an executing run's lease is renewed (only used when <see cref="IsShared"/>).</summary>
    TimeSpan RenewInterval { get; }

    /// <summary>How often to look for runs nobody executes (only used when <see cref="IsShared"/>).</summary>
    TimeSpan PollInterval { get; }

    /// <summary>
    /// Claims the thread's next run for this node. Returns an empty claim when the thread has no pending run or
    /// another node holds a live lease on one of its runs; a claim with <see cref="RunClaim.Abandoned"/> when a run
    /// is <c>running</c> under an expired lease (its node died): the caller now owns it and must end it.
    /// </summary>
    Task<RunClaim> ClaimNextAsync(Guid threadId, CancellationToken cancellationToken = default);

    /// <summary>Extends this node's lease on <paramref name="runId"/>; false when the lease was lost (another node took the run over).</summary>
    Task<bool> RenewAsync(Guid runId, CancellationToken cancellationToken = default);

    /// <summary>Threads with a pending run nobody has claimed, or a run whose lease expired, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<Guid>> ListThreadsNeedingWorkAsync(int limit, CancellationToken cancellationToken = default);
}

/// <summary>What <see cref="IRunLeases.ClaimNextAsync"/> got.</summary>
/// <param name="Run">A pending run this node now holds and should execute, or null.</param>
/// <param name="Abandoned">A run left <c>running</c> by a node whose lease expired, now held by this node to end it, or null.</param>
public readonly record struct RunClaim(Run? Run, Run? Abandoned);

/// <summary>The single-node default: the oldest pending run is this node's, and nothing is ever abandoned while it runs.</summary>
public sealed class InProcessRunLeases(IThreadStore threads) : IRunLeases
{
    /// <inheritdoc />
    public bool IsShared => false;

    /// <inheritdoc />
    public TimeSpan RenewInterval => Timeout.InfiniteTimeSpan;

    /// <inheritdoc />
    public TimeSpan PollInterval => Timeout.InfiniteTimeSpan;

    /// <inheritdoc />
    public async Task<RunClaim> ClaimNextAsync(Guid threadId, CancellationToken cancellationToken = default) =>
        new(await threads.GetNextPendingRunAsync(threadId, cancellationToken), null);

    /// <inheritdoc />
    public Task<bool> RenewAsync(Guid runId, CancellationToken cancellationToken = default) => Task.FromResult(true);

    /// <inheritdoc />
    public Task<IReadOnlyList<Guid>> ListThreadsNeedingWorkAsync(int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<Guid>>([]);
}
