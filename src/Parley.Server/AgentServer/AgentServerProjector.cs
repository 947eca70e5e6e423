using System.Text.Json;
using Parley.Core;
using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Server.AgentServer;

/// <summary>One SSE event projected from a log event, before a stream selects it by kind.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Event">The SSE event name.</param>
/// <param name="Data">The data (JSON).</param>
public readonly record struct ProjectedEvent(ProjectedKind Kind, string Event, string Data);

/// <summary>
/// Projects a thread's log into the agent-server dialect's events, keeping the thread's LangChain <c>values</c> as it
/// goes. Every log event yields the same list of projected events in every stream (whatever its modes), so the k-th
/// of them has the same id (<see cref="StreamPosition"/>) everywhere, and a stream resumed after any id continues
/// exactly. One projector per stream; not thread-safe.
/// </summary>
public sealed class AgentServerProjector(IThreadStore store, IAgentStore agents, Guid threadId)
{
    private readonly List<(Guid? RunId, LangChainMessage Message)> _messages = [];
    private readonly Dictionary<Guid, RunInfo> _runs = [];

    /// <summary>Log event types that end a run.</summary>
    public static readonly HashSet<string> RunEndTypes =
    [
        ThreadEventTypes.RunCompleted, ThreadEventTypes.RunFailed, ThreadEventTypes.RunCancelled,
        ThreadEventTypes.RunInterrupted, ThreadEventTypes.RunRolledBack,
    ];

    /// <summary>
    /// Loads the thread's messages up to <paramref name="upToSequence"/> as the starting values (completed and inbound
    /// messages; failed replies are not part of the values, as a failed node writes no state).
    /// </summary>
    public async Task InitializeAsync(long upToSequence, CancellationToken cancellationToken)
    {
        _messages.Clear();
        long after = 0;
        while (after < upToSequence)
        {
            var page = await store.ListMessagesAsync(threadId, after, 500, cancellationToken);
            foreach (var m in page)
            {
                if (m.Sequence > upToSequence) return;
                Add(m);
            }
            if (page.Count < 500) return;
            after = page[^1].Sequence;
        }
    }

    /// <summary>The current values: <c>{"messages": [...]}</c>.</summary>
    public ThreadValues Values => new(_messages.Select(m => m.Message).ToList());

    /// <summary>Applies <paramref name="e"/> to the values and returns what it projects to, in order.</summary>
    public async ValueTask<IReadOnlyList<ProjectedEvent>> ProjectAsync(ThreadEvent e, CancellationToken cancellationToken)
    {
        var wire = AgentServerJsonContext.Wire;
        switch (e.Type)
        {
            case ThreadEventTypes.MessageCreated:
            {
                var message = JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.ThreadMessage)!;
                if (!Add(message)) return [];
                if (message.Direction == MessageDirection.INBOUND || message.RunId is null)
                    return [new(ProjectedKind.StateValues, "values", ValuesJson())];
                var info = await RunInfoAsync(message.RunId.Value, cancellationToken);
                var added = _messages[^1].Message;
                var projected = new List<ProjectedEvent>(3);
                // A FLOW reply arrives whole, with no deltas before it: messages-tuple gets it as one chunk.
                if (info.Mode == AgentMode.FLOW)
                    projected.Add(new(ProjectedKind.Messages, "messages", Tuple(added, message.RunId.Value, info)));
                projected.Add(new(ProjectedKind.Updates, "updates",
                    JsonSerializer.Serialize(new AgentUpdates(new ThreadValues([added])), wire.AgentUpdates)));
                projected.Add(new(ProjectedKind.Values, "values", ValuesJson()));
                return projected;
            }
            case ThreadEventTypes.MessageDelta when e.RunId is { } runId:
            {
                var delta = JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.MessageDeltaData)!;
                var info = await RunInfoAsync(runId, cancellationToken);
                return [new(ProjectedKind.Messages, "messages", Tuple(LangChainMessage.Ai(delta.MessageId, delta.Delta), runId, info))];
            }
            case ThreadEventTypes.RunQueued when e.RunId is { } runId:
                await RememberAsync(e, cancellationToken);
                return [new(ProjectedKind.Metadata, "metadata", JsonSerializer.Serialize(new RunMetadataEvent(runId.ToString("D"), 1), wire.RunMetadataEvent))];
            case ThreadEventTypes.RunStarted:
                await RememberAsync(e, cancellationToken);
                return [new(ProjectedKind.Values, "values", ValuesJson())];
            case ThreadEventTypes.RunCompleted or ThreadEventTypes.RunCancelled or ThreadEventTypes.RunInterrupted when e.RunId is { } runId:
                return [End(runId, e.Type == ThreadEventTypes.RunCompleted ? "success" : "interrupted")];
            case ThreadEventTypes.RunFailed when e.RunId is { } runId:
            {
                var run = JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.Run)!;
                return
                [
                    new(ProjectedKind.Error, "error", JsonSerializer.Serialize(new RunErrorEvent("RunError", run.Error ?? "The run failed."), wire.RunErrorEvent)),
                    End(runId, "error"),
                ];
            }
            case ThreadEventTypes.RunRolledBack when e.RunId is { } runId:
                _messages.RemoveAll(m => m.RunId == runId);
                return [new(ProjectedKind.StateValues, "values", ValuesJson()), End(runId, "interrupted")];
            case ThreadEventTypes.ToolCall or ThreadEventTypes.ToolResult or ThreadEventTypes.StateUpdated:
            {
                using var data = JsonDocument.Parse(e.Data);
                return [new(ProjectedKind.Custom, "custom", JsonSerializer.Serialize(new CustomEvent(e.Type, data.RootElement), wire.CustomEvent))];
            }
            default:
                return [];
        }
    }

    /// <summary>The dialect's run status for a Parley run status.</summary>
    public static string Status(RunStatus status) => status switch
    {
        RunStatus.pending => "pending",
        RunStatus.running => "running",
        RunStatus.success => "success",
        RunStatus.error => "error",
        _ => "interrupted", // interrupted, and cancelled (the thread was closed or handed off before the run started)
    };

    private static ProjectedEvent End(Guid runId, string status) =>
        new(ProjectedKind.End, "end", JsonSerializer.Serialize(new RunEndEvent(runId.ToString("D"), status), AgentServerJsonContext.Wire.RunEndEvent));

    private bool Add(ThreadMessage m)
    {
        if (m.Direction == MessageDirection.OUTBOUND && m.Status != MessageStatus.SENT) return false;
        _messages.Add((m.RunId, m.Direction == MessageDirection.INBOUND ? LangChainMessage.Human(m.Id, m.MessageBody) : LangChainMessage.Ai(m.Id, m.MessageBody)));
        return true;
    }

    private string ValuesJson() => JsonSerializer.Serialize(Values, AgentServerJsonContext.Wire.ThreadValues);

    private string Tuple(LangChainMessage chunk, Guid runId, RunInfo info)
    {
        var metadata = new MessageChunkMetadata { RunId = runId.ToString("D"), ThreadId = threadId.ToString("D"), AssistantId = info.AssistantId, GraphId = info.GraphId };
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartArray();
            JsonSerializer.Serialize(writer, chunk, AgentServerJsonContext.Wire.LangChainMessage);
            JsonSerializer.Serialize(writer, metadata, AgentServerJsonContext.Wire.MessageChunkMetadata);
            writer.WriteEndArray();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private async ValueTask RememberAsync(ThreadEvent e, CancellationToken cancellationToken)
    {
        if (e.RunId is not { } runId || _runs.ContainsKey(runId)) return;
        var run = JsonSerializer.Deserialize(e.Data, CoreJsonContext.Payloads.Run)!;
        _runs[runId] = await DescribeAsync(run.AgentVersionId, cancellationToken);
    }

    private async ValueTask<RunInfo> RunInfoAsync(Guid runId, CancellationToken cancellationToken)
    {
        if (_runs.TryGetValue(runId, out var info)) return info;
        // Joined after the run's start: read the run (a rolled-back run is gone; then its agent is unknown).
        info = await store.GetRunAsync(runId, cancellationToken) is { } run
            ? await DescribeAsync(run.AgentVersionId, cancellationToken)
            : new RunInfo(null, null, AgentMode.PROMPT);
        _runs[runId] = info;
        return info;
    }

    private async Task<RunInfo> DescribeAsync(Guid versionId, CancellationToken cancellationToken)
    {
        var version = await agents.GetAgentVersionAsync(versionId, cancellationToken);
        if (version is null) return new RunInfo(null, null, AgentMode.PROMPT);
        var agent = await agents.GetAgentAsync(version.AgentId, cancellationToken);
        return new RunInfo(version.AgentId.ToString("D"), agent?.Name, version.Definition.Mode);
    }

    private sealed record RunInfo(string? AssistantId, string? GraphId, AgentMode Mode);
}
