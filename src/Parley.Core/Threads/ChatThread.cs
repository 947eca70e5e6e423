using Parley.Core.Agents.Flow;

namespace Parley.Core.Threads;

/// <summary>
/// One conversation between an agent and a user (named ChatThread to stay clear of <see cref="System.Threading.Thread"/>).
/// Its state (flow position, who is in control) and variables change only through <see cref="ThreadChange"/>s,
/// each of which appends events to the thread's log.
/// </summary>
public sealed record ChatThread
{
    /// <summary>Thread id (UUID).</summary>
    public required Guid Id { get; init; }

    /// <summary>Owning organization.</summary>
    public required Guid OrganizationId { get; init; }

    /// <summary>
    /// The agent the thread talks to, or null for an agent-server thread before its first run (that dialect creates
    /// threads without an assistant and names one per run; each run then sets the thread's agent to its own).
    /// </summary>
    public Guid? AgentId { get; init; }

    /// <summary>The agent version pinned at creation (or by the latest agent-server run), or null while <see cref="AgentId"/> is null.</summary>
    public Guid? AgentVersionId { get; init; }

    /// <summary>Channel: <c>WEB</c> for web chat threads, <c>CHAT</c> for chat-stream sessions, <c>AGENT_SERVER</c> for agent-server threads.</summary>
    public string Channel { get; init; } = "WEB";

    /// <summary>Caller-supplied string map, returned as given.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>Variables that fill <c>{{placeholders}}</c>; set at creation and by the agent.</summary>
    public IReadOnlyDictionary<string, string> Variables { get; init; } = new Dictionary<string, string>();

    /// <summary>Agent-side state: flow position and control.</summary>
    public ChatThreadState State { get; init; } = ChatThreadState.Initial;

    /// <summary>False once the thread is closed.</summary>
    public bool IsActive { get; init; } = true;

    /// <summary>Creation time (UTC).</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Last change (UTC).</summary>
    public required DateTimeOffset UpdatedAt { get; init; }

    /// <summary>When the thread was closed, or null.</summary>
    public DateTimeOffset? ClosedAt { get; init; }

    /// <summary>Why it was closed (<c>window_expired</c>, <c>flow_completed</c>, or the caller's reason), or null.</summary>
    public string? ClosedReason { get; init; }

    /// <summary>When the inactivity window runs out (UTC). Every inbound message restarts it.</summary>
    public required DateTimeOffset WindowExpiresAt { get; init; }

    /// <summary>Sequence number of the last event in the thread's log (0 when empty).</summary>
    public long LastSequence { get; init; }
}

/// <summary>Agent-side state of a thread, persisted with it and announced by <c>state.updated</c> events.</summary>
/// <param name="Flow">FLOW position.</param>
/// <param name="Control"><c>agent</c>, or <c>human</c> after a hand-off (inbound messages then start no run).</param>
/// <param name="HandOffReason">Why the thread was handed off, or null.</param>
public sealed record ChatThreadState(FlowState Flow, string Control, string? HandOffReason)
{
    /// <summary>Control value while the agent answers.</summary>
    public const string AgentControl = "agent";

    /// <summary>Control value after a hand-off.</summary>
    public const string HumanControl = "human";

    /// <summary>A new thread's state.</summary>
    public static ChatThreadState Initial { get; } = new(FlowState.Initial, AgentControl, null);
}
