using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text;
using Microsoft.Extensions.Options;
using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Storage;
using Parley.Server.Streaming;

namespace Parley.Server.AgentServer;

/// <summary>Where an agent-server stream starts and what it carries.</summary>
/// <param name="ThreadId">The thread.</param>
/// <param name="ReadAfter">The log is read after this sequence (the values are loaded up to it).</param>
/// <param name="Skip">Events at or before this position were seen by the client (from <c>Last-Event-ID</c>), or null.</param>
/// <param name="Kinds">The projected kinds the stream carries.</param>
/// <param name="RunId">For a run stream, the run (only its events are sent; the stream ends with the run); null for the thread stream.</param>
/// <param name="RunFinished">For a run stream, true when the run had ended before the request: the stream ends after the replay.</param>
public sealed record AgentServerStreamPlan(Guid ThreadId, long ReadAfter, StreamPosition? Skip, IReadOnlySet<ProjectedKind> Kinds, Guid? RunId, bool RunFinished);

/// <summary>
/// Writes a run stream or the thread stream of the agent-server dialect as Server-Sent Events formatted by
/// <see cref="SseFormatter"/>: a projection of the thread's log (<see cref="AgentServerProjector"/>) read by the
/// gap-free <see cref="ThreadEventReader"/>, with ids that resume exactly (<see cref="StreamPosition"/>) and
/// <c>: ping</c> comment lines on idle streams.
/// </summary>
public sealed class AgentServerStreamResult(AgentServerStreamPlan plan, IReadOnlyDictionary<string, string> headers) : IResult
{
    /// <inheritdoc />
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var services = httpContext.RequestServices;
        var cancellationToken = httpContext.RequestAborted;
        var projector = new AgentServerProjector(services.GetRequiredService<IThreadStore>(), services.GetRequiredService<IAgentStore>(), plan.ThreadId);
        await projector.InitializeAsync(plan.ReadAfter, cancellationToken);
        var heartbeat = TimeSpan.FromSeconds(services.GetRequiredService<IOptions<StreamingOptions>>().Value.HeartbeatSeconds);
        var source = services.GetRequiredService<ThreadEventReader>().ReadAsync(plan.ThreadId, plan.ReadAfter, heartbeat, endWhenStopping: true, cancellationToken);

        foreach (var (name, value) in headers) httpContext.Response.Headers[name] = value;
        var metrics = services.GetRequiredService<Parley.Core.Diagnostics.ParleyMetrics>();
        await SseResponse.StartAsync(httpContext.Response, cancellationToken);
        metrics.OpenStreams.Add(1);
        using var closed = new OpenStreamScope(metrics);
        // Events are copied into the response pipe and sent at each flush; an idle stream holds no buffer of its own.
        var buffered = new ResponseBufferStream(httpContext.Response.BodyWriter);
        var burst = new Burst(plan, projector, source.GetAsyncEnumerator(cancellationToken), metrics.EventsDelivered, cancellationToken);
        try
        {
            // A run that had ended before the request: everything of it was in the store, and is sent at the first flush.
            await burst.WriteAsync(buffered, Heartbeat, FormatData, endAtFlush: plan.RunFinished, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away or the server is stopping: it resumes with Last-Event-ID.
        }
        catch (IOException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// The agent-server stream's bursts (<see cref="SseEventBurst{T}"/>): the projected events of the log's events
    /// (<see cref="AgentServerProjector"/>, each log event projected once, in order) that this stream sends.
    /// </summary>
    private sealed class Burst(
        AgentServerStreamPlan plan, AgentServerProjector projector, IAsyncEnumerator<ThreadStreamItem> source,
        System.Diagnostics.Metrics.Counter<long> delivered, CancellationToken cancellationToken)
        : SseEventBurst<string>(source)
    {
        private ThreadEvent? _event; // the log event whose projection is being sent
        private IReadOnlyList<ProjectedEvent> _projected = [];
        private int _index; // of the current projected event in _projected

        /// <inheritdoc />
        public override SseItem<string> Current
        {
            get
            {
                var projected = _projected[_index];
                return new SseItem<string>(projected.Data, projected.Event) { EventId = new StreamPosition(_event!.Sequence, _index).ToString() };
            }
        }

        /// <summary>Projects <paramref name="e"/>; true when the stream sends any of it.</summary>
        protected override async ValueTask<bool> AcceptAsync(ThreadEvent e)
        {
            _projected = await projector.ProjectAsync(e, cancellationToken);
            _event = e;
            _index = -1;
            return NextWithinEvent();
        }

        /// <summary>
        /// Moves to the next projected event of the current log event that this stream sends. When none is left, a run
        /// stream ends if the log event ended its run (even when it sent nothing of that event).
        /// </summary>
        protected override bool NextWithinEvent()
        {
            var e = _event!;
            if (plan.RunId is not { } runId || e.RunId == runId)
            {
                while (++_index < _projected.Count)
                {
                    if (!plan.Kinds.Contains(_projected[_index].Kind)) continue;
                    if (plan.Skip is { } skip && (e.Sequence < skip.Sequence || e.Sequence == skip.Sequence && _index <= skip.Index)) continue;
                    delivered.Add(1);
                    return true;
                }
            }
            _index = _projected.Count;
            if (plan.RunId is { } run && e.RunId == run && AgentServerProjector.RunEndTypes.Contains(e.Type)) Ended = true;
            return false;
        }

        /// <summary>Lets go of the last log event and its projection between bursts (an idle stream keeps neither).</summary>
        protected override void OnIdle()
        {
            _event = null;
            _projected = [];
        }
    }

    /// <summary>
    /// The keep-alive comment, without the blank line the other dialects put after it. A comment line alone is ignored
    /// by every SSE parser (WHATWG HTML §9.2.6); a blank line after it would make @langchain/langgraph-sdk 2.0.0's
    /// decoder, which keeps the last id across events, hand the application an empty event (<c>event: ""</c>).
    /// </summary>
    private static readonly byte[] Heartbeat = ": ping\n"u8.ToArray();

    private static void FormatData(SseItem<string> item, IBufferWriter<byte> writer) => Encoding.UTF8.GetBytes(item.Data, writer);
}
