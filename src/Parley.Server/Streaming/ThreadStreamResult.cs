using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Options;
using Parley.Core.Events;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Server.Streaming;

/// <summary>
/// Writes a thread's event log as Server-Sent Events (WHATWG HTML §9.2): <c>id:</c> is the event's sequence number,
/// so a client that reconnects with <c>Last-Event-ID</c> continues exactly after the last event it saw. Events are
/// formatted by <see cref="SseFormatter"/>; idle streams get <c>: ping</c> comments. Writes are buffered in the response pipe and flushed
/// whenever nothing more is ready, so a replay goes out in large writes and a live event goes out at once.
/// The stream ends when the thread closes (after the closing run's last event); reconnecting once nothing is left answers
/// 204 No Content, which tells an <c>EventSource</c> to stop reconnecting.
/// </summary>
public sealed class ThreadStreamResult(ChatThread thread, long afterSequence, ThreadStreamMode mode) : IResult
{
    private System.Diagnostics.Metrics.Counter<long>? _delivered;

    /// <inheritdoc />
    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var services = httpContext.RequestServices;
        using var lifetime = SseResponse.LinkLifetime(httpContext);
        var cancellationToken = lifetime.Token;
        var store = services.GetRequiredService<IThreadStore>();

        IAsyncEnumerable<ThreadStreamItem> source;
        if (!thread.IsActive)
        {
            var remaining = await ReadRemainingAsync(store, cancellationToken);
            if (remaining.Count == 0)
            {
                httpContext.Response.StatusCode = StatusCodes.Status204NoContent;
                return;
            }
            source = remaining.Select(e => new ThreadStreamItem(ThreadStreamItemKind.Event, e)).ToAsyncEnumerable();
        }
        else
        {
            var heartbeat = TimeSpan.FromSeconds(services.GetRequiredService<IOptions<StreamingOptions>>().Value.HeartbeatSeconds);
            source = services.GetRequiredService<ThreadEventReader>().ReadAsync(thread.Id, afterSequence, heartbeat, cancellationToken);
        }

        var metrics = services.GetRequiredService<Parley.Core.Diagnostics.ParleyMetrics>();
        await SseResponse.StartAsync(httpContext.Response, cancellationToken);
        metrics.OpenStreams.Add(1);
        _delivered = metrics.EventsDelivered;
        using var closed = new OpenStreamScope(metrics);
        // Events are copied into the response pipe and sent at each flush (whenever nothing more is ready).
        var buffered = new ResponseBufferStream(httpContext.Response.BodyWriter);
        try
        {
            await SseFormatter.WriteAsync(ProjectAsync(source, buffered, cancellationToken), buffered, FormatData, cancellationToken);
            await buffered.FlushAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away or the server is stopping: nothing to finish.
        }
        catch (IOException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Turns log items into SSE items. Heartbeats and flushes are done here, between two items, while the formatter
    /// awaits the next one: SSE items cannot carry comments, and the formatter never writes concurrently with this.
    /// </summary>
    private async IAsyncEnumerable<SseItem<ThreadEvent>> ProjectAsync(
        IAsyncEnumerable<ThreadStreamItem> source, Stream output, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Guid? closingRun = null;
        await foreach (var item in source.WithCancellation(cancellationToken))
        {
            switch (item.Kind)
            {
                case ThreadStreamItemKind.Heartbeat:
                    await output.WriteAsync(SseResponse.Heartbeat, cancellationToken);
                    await output.FlushAsync(cancellationToken);
                    break;
                case ThreadStreamItemKind.Flush:
                    await output.FlushAsync(cancellationToken);
                    break;
                case ThreadStreamItemKind.Event:
                    var e = item.Event!;
                    if (Project(e) is { } eventType)
                    {
                        _delivered?.Add(1);
                        yield return new SseItem<ThreadEvent>(e, eventType) { EventId = e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture) };
                    }
                    // The stream ends with the thread: at thread.closed, or when a run closed it, at that run's end.
                    if (e.Type == ThreadEventTypes.ThreadClosed)
                    {
                        if (e.RunId is null) yield break;
                        closingRun = e.RunId;
                    }
                    else if (closingRun is { } run && e.RunId == run &&
                             e.Type is ThreadEventTypes.RunCompleted or ThreadEventTypes.RunFailed or ThreadEventTypes.RunCancelled
                                 or ThreadEventTypes.RunInterrupted or ThreadEventTypes.RunRolledBack)
                    {
                        yield break;
                    }
                    break;
            }
        }
    }

    /// <summary>The SSE event name for <paramref name="e"/> in this stream's mode, or null when the mode skips it.</summary>
    private string? Project(ThreadEvent e) => mode switch
    {
        ThreadStreamMode.All => e.Type,
        _ when e.Type == ThreadEventTypes.MessageCreated && e.Data.Contains("\"direction\":\"OUTBOUND\"", StringComparison.Ordinal) => "message",
        _ => null,
    };

    private static void FormatData(SseItem<ThreadEvent> item, IBufferWriter<byte> writer) => Encoding.UTF8.GetBytes(item.Data.Data, writer);

    private async Task<List<ThreadEvent>> ReadRemainingAsync(IThreadStore store, CancellationToken cancellationToken)
    {
        var projected = new List<ThreadEvent>();
        var after = afterSequence;
        while (true)
        {
            var page = await store.ReadEventsAsync(thread.Id, after, ThreadEventReader.ReplayPageSize, cancellationToken);
            projected.AddRange(page.Where(e => Project(e) is not null));
            if (page.Count < ThreadEventReader.ReplayPageSize) return projected;
            after = page[^1].Sequence;
        }
    }
}

/// <summary>Counts a stream as closed when the response ends, however it ends.</summary>
internal readonly struct OpenStreamScope(Parley.Core.Diagnostics.ParleyMetrics metrics) : IDisposable
{
    public void Dispose() => metrics.OpenStreams.Add(-1);
}
