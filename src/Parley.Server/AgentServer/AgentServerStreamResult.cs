using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
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
        try
        {
            await SseFormatter.WriteAsync(ProjectAsync(source, projector, buffered, metrics.EventsDelivered, cancellationToken), buffered, FormatData, cancellationToken);
            await buffered.FlushAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away or the server is stopping: it resumes with Last-Event-ID.
        }
        catch (IOException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async IAsyncEnumerable<SseItem<string>> ProjectAsync(
        IAsyncEnumerable<ThreadStreamItem> source, AgentServerProjector projector, Stream output,
        System.Diagnostics.Metrics.Counter<long> delivered, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var item in source.WithCancellation(cancellationToken))
        {
            switch (item.Kind)
            {
                case ThreadStreamItemKind.Heartbeat:
                    await output.WriteAsync(Heartbeat, cancellationToken);
                    await output.FlushAsync(cancellationToken);
                    break;
                case ThreadStreamItemKind.Flush:
                    await output.FlushAsync(cancellationToken);
                    if (plan.RunFinished) yield break; // everything of an ended run was in the store, and is sent
                    break;
                case ThreadStreamItemKind.Event:
                    var e = item.Event!;
                    var projected = await projector.ProjectAsync(e, cancellationToken);
                    var inScope = plan.RunId is not { } runId || e.RunId == runId;
                    for (var k = 0; k < projected.Count; k++)
                    {
                        var position = new StreamPosition(e.Sequence, k);
                        if (!inScope || !plan.Kinds.Contains(projected[k].Kind)) continue;
                        if (plan.Skip is { } skip && (position.Sequence < skip.Sequence || position.Sequence == skip.Sequence && position.Index <= skip.Index)) continue;
                        delivered.Add(1);
                        yield return new SseItem<string>(projected[k].Data, projected[k].Event) { EventId = position.ToString() };
                    }
                    if (plan.RunId is { } run && e.RunId == run && AgentServerProjector.RunEndTypes.Contains(e.Type))
                        yield break;
                    break;
            }
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
