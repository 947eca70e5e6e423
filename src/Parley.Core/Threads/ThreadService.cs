using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Storage;

namespace Parley.Core.Threads;

/// <summary>The result of accepting an inbound message.</summary>
/// <param name="Message">The stored message.</param>
/// <param name="Run">The run queued to answer it, or null (discardInboundSms, or the thread is handed off to a human).</param>
/// <param name="WindowExpiresIn">Seconds left in the thread's inactivity window, which the message restarted.</param>
public sealed record InboundMessageAccepted(ThreadMessage Message, Run? Run, long WindowExpiresIn);

/// <summary>
/// The dialect-neutral thread operations: create, post an inbound message, close, expire. Enforces the rules every
/// dialect shares (organization scoping, closed threads, the inactivity window, queueing of runs) and throws
/// <see cref="ParleyException"/> for a client's mistakes.
/// </summary>
public sealed class ThreadService(IThreadStore threads, IAgentStore agents, IOrganizationStore organizations, RunEngine runEngine, TimeProvider time, Diagnostics.ParleyMetrics metrics)
{
    /// <summary>The <c>closedReason</c> of a thread whose inactivity window ran out.</summary>
    public const string WindowExpiredReason = "window_expired";

    /// <summary>Creates a thread of <paramref name="agentId"/> for <paramref name="organizationId"/>, pinned to the agent's current version.</summary>
    /// <exception cref="ParleyException">NotFound when the agent is unknown or belongs to another organization (it is not revealed).</exception>
    public async Task<(ChatThread Thread, Agent Agent, AgentVersion Version)> CreateAsync(
        Guid organizationId,
        Guid agentId,
        IReadOnlyDictionary<string, string> metadata,
        IReadOnlyDictionary<string, string> variables,
        string channel,
        CancellationToken cancellationToken = default)
    {
        var agent = await agents.GetAgentAsync(agentId, cancellationToken);
        if (agent is null || agent.OrganizationId != organizationId)
            throw ParleyException.NotFound($"agentId: no agent {agentId} in this organization.");
        var version = await agents.GetAgentVersionAsync(agent.CurrentVersionId, cancellationToken)
            ?? throw new InvalidOperationException($"Agent {agentId} has no current version.");
        var now = time.GetUtcNow();
        var thread = new ChatThread
        {
            Id = Guid.CreateVersion7(now),
            OrganizationId = organizationId,
            AgentId = agent.Id,
            AgentVersionId = version.Id,
            Channel = channel,
            Metadata = new Dictionary<string, string>(metadata),
            Variables = new Dictionary<string, string>(variables),
            CreatedAt = now,
            UpdatedAt = now,
            WindowExpiresAt = now.AddSeconds(version.Definition.WindowSeconds),
        };
        var change = new ThreadChange(thread, now);
        change.Append(ThreadEventTypes.ThreadCreated, null,
            new ThreadCreatedData(thread.Id, agent.Id, version.Id, thread.Metadata, thread.Variables), CoreJsonContext.Payloads.ThreadCreatedData);
        await threads.CreateThreadAsync(change, cancellationToken);
        return (change.Thread, agent, version);
    }

    /// <summary>Returns the thread when it exists and belongs to <paramref name="organizationId"/>.</summary>
    /// <exception cref="ParleyException">NotFound for an unknown thread; Forbidden for another organization's.</exception>
    public async Task<ChatThread> GetAsync(Guid organizationId, Guid threadId, CancellationToken cancellationToken = default)
    {
        var thread = await threads.GetThreadAsync(threadId, cancellationToken) ?? throw ThreadNotFound(threadId);
        EnsureOwner(thread, organizationId);
        return thread;
    }

    /// <summary>
    /// Stores an inbound message, restarts the inactivity window and queues a run behind the thread's earlier runs
    /// (unless the agent version discards inbound messages or a human has the thread), all in one write.
    /// </summary>
    /// <exception cref="ParleyException">NotFound, Forbidden, or BadRequest when the thread is closed (a thread whose window ran out is closed first, with reason <c>window_expired</c>).</exception>
    public async Task<InboundMessageAccepted> PostInboundMessageAsync(Guid organizationId, Guid threadId, string text, CancellationToken cancellationToken = default) =>
        await PostInboundMessageAsync(organizationId, await GetAsync(organizationId, threadId, cancellationToken), text, cancellationToken);

    /// <summary>As <see cref="PostInboundMessageAsync(Guid, Guid, string, CancellationToken)"/>, for a thread the caller has already read and authorized.</summary>
    public async Task<InboundMessageAccepted> PostInboundMessageAsync(Guid organizationId, ChatThread thread, string text, CancellationToken cancellationToken = default)
    {
        EnsureOwner(thread, organizationId);
        var threadId = thread.Id;
        await EnsureBalanceAsync(organizationId, cancellationToken);
        var version = await agents.GetAgentVersionAsync(thread.AgentVersionId, cancellationToken)
            ?? throw new InvalidOperationException($"Thread {threadId} pins a missing agent version.");
        var definition = version.Definition;

        var accepted = await threads.UpdateThreadAsync(threadId, change =>
        {
            var current = change.Thread;
            if (!current.IsActive) return null;
            if (current.WindowExpiresAt <= change.Now)
            {
                change.Close(WindowExpiredReason);
                return null;
            }
            var queueRun = !definition.DiscardInboundSms && current.State.Control == ChatThreadState.AgentControl;
            var runId = queueRun ? Guid.CreateVersion7(change.Now) : (Guid?)null;
            var message = change.AddMessage(new ThreadMessage
            {
                Id = Guid.CreateVersion7(change.Now),
                ThreadId = threadId,
                OrganizationId = organizationId,
                Direction = MessageDirection.INBOUND,
                MessageBody = text,
                Status = MessageStatus.RECEIVED,
                RunId = runId,
                CreatedAt = change.Now,
            });
            change.Thread = change.Thread with { WindowExpiresAt = change.Now.AddSeconds(definition.WindowSeconds) };
            var run = runId is { } id
                ? change.SaveRun(new Run(id, threadId, organizationId, version.Id, message.Id, RunStatus.pending, change.Now, null, null, null), ThreadEventTypes.RunQueued)
                : null;
            return new InboundMessageAccepted(message, run, definition.WindowSeconds);
        }, cancellationToken);

        if (accepted is null)
            throw ParleyException.BadRequest($"threadId: thread {threadId} is closed and accepts no messages.");
        if (accepted.Run is not null)
        {
            metrics.QueuedRuns.Add(1);
            runEngine.Schedule(threadId);
        }
        return accepted;
    }

    /// <summary>
    /// Refuses work when the organization has a token budget and its runs have used it up, so the request stores
    /// nothing and starts no model call.
    /// </summary>
    /// <exception cref="ParleyException">PaymentRequired when the budget is spent.</exception>
    public async Task EnsureBalanceAsync(Guid organizationId, CancellationToken cancellationToken = default)
    {
        var organization = await organizations.GetOrganizationAsync(organizationId, cancellationToken);
        if (organization?.TokenBudget is not { } budget) return;
        var used = await threads.GetOrganizationUsageAsync(organizationId, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue, cancellationToken);
        if (used.Usage.TotalTokens >= budget)
            throw new ParleyException(ParleyErrorKind.PaymentRequired,
                $"Insufficient balance: the organization's token budget of {budget} tokens is spent ({used.Usage.TotalTokens} used).");
    }

    /// <summary>
    /// Stores a message written by a person (an operator after a hand-off) as an outbound message, with no run. It is
    /// part of the history the agent sees later.
    /// </summary>
    /// <exception cref="ParleyException">NotFound, Forbidden, or BadRequest when the thread is closed.</exception>
    public async Task<ThreadMessage> PostOperatorMessageAsync(Guid organizationId, Guid threadId, string text, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        return await threads.UpdateThreadAsync(threadId, change =>
        {
            if (!change.Thread.IsActive) throw ParleyException.BadRequest($"threadId: thread {threadId} is closed and accepts no messages.");
            return change.AddMessage(new ThreadMessage
            {
                Id = Guid.CreateVersion7(change.Now),
                ThreadId = threadId,
                OrganizationId = organizationId,
                Direction = MessageDirection.OUTBOUND,
                MessageBody = text,
                Status = MessageStatus.SENT,
                CreatedAt = change.Now,
            });
        }, cancellationToken);
    }

    /// <summary>
    /// Gives a handed-off thread back to the agent: <c>control</c> becomes <c>agent</c>, and a FLOW that ended at the
    /// hand-off starts over with the next message. Releasing a thread the agent has changes nothing.
    /// </summary>
    /// <exception cref="ParleyException">NotFound, Forbidden, or BadRequest when the thread is closed.</exception>
    public async Task<ChatThread> ReleaseAsync(Guid organizationId, Guid threadId, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        return await threads.UpdateThreadAsync(threadId, change =>
        {
            if (!change.Thread.IsActive) throw ParleyException.BadRequest($"threadId: thread {threadId} is closed.");
            if (change.Thread.State.Control == ChatThreadState.AgentControl) return change.Thread;
            var flow = change.Thread.State.Flow.Ended ? Agents.Flow.FlowState.Initial : change.Thread.State.Flow;
            change.UpdateState(state: new ChatThreadState(flow, ChatThreadState.AgentControl, null));
            return change.Thread;
        }, cancellationToken);
    }

    /// <summary>Closes the thread with <paramref name="reason"/>; closing a closed thread changes nothing.</summary>
    /// <exception cref="ParleyException">NotFound or Forbidden.</exception>
    public async Task<ChatThread> CloseAsync(Guid organizationId, Guid threadId, string reason, CancellationToken cancellationToken = default)
    {
        await GetAsync(organizationId, threadId, cancellationToken);
        return await threads.UpdateThreadAsync(threadId, change =>
        {
            change.Close(reason);
            return change.Thread;
        }, cancellationToken);
    }

    /// <summary>Closes every active thread whose window ran out (reason <c>window_expired</c>); returns how many.</summary>
    public async Task<int> CloseExpiredAsync(CancellationToken cancellationToken = default)
    {
        var closed = 0;
        while (true)
        {
            var expired = await threads.ListExpiredThreadsAsync(time.GetUtcNow(), 100, cancellationToken);
            foreach (var id in expired)
            {
                var didClose = await threads.UpdateThreadAsync(id, change =>
                {
                    if (!change.Thread.IsActive || change.Thread.WindowExpiresAt > change.Now) return false;
                    change.Close(WindowExpiredReason);
                    return true;
                }, cancellationToken);
                if (didClose) closed++;
            }
            if (expired.Count < 100) return closed;
        }
    }

    /// <summary>Seconds left in the thread's inactivity window (0 when it ran out), rounded down.</summary>
    public long WindowSecondsLeft(ChatThread thread) =>
        Math.Max(0, (long)(thread.WindowExpiresAt - time.GetUtcNow()).TotalSeconds);

    private static void EnsureOwner(ChatThread thread, Guid organizationId)
    {
        if (thread.OrganizationId != organizationId)
            throw ParleyException.Forbidden($"threadId: thread {thread.Id} is not accessible with this API key.");
    }

    private static ParleyException ThreadNotFound(Guid threadId) => ParleyException.NotFound($"threadId: no thread {threadId}.");
}
