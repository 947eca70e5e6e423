using Microsoft.Extensions.Options;
using Parley.Core.Storage;

namespace Parley.Core.Events;

/// <summary>
/// Waits for one kind of event in a thread's log (a run's <c>run.cancel_requested</c>) without being woken by all the
/// others: its bus subscription queues only the events it accepts (<see cref="ThreadEventSubscription.Accepts"/>).
/// A <see cref="ThreadEventReader"/> would wake the waiter for every delta of the run it watches: one thread-pool
/// item and a pass through the reader per token, for nothing (paced concurrent-runs benchmark, docs/benchmarks.md).
/// </summary>
/// <remarks>
/// The store is the truth, as for the reader: the watcher subscribes, then reads the store after the given sequence,
/// so a match appended in between is found in one or the other. It reads the store again, from where it stopped,
/// whenever its subscription completes (the subscriber overflowed, or a backplane asked it to resync) and, with a
/// backplane that may lose a message without noticing (<see cref="ThreadEventReaderOptions.CheckStoreWhenIdle"/>),
/// every <see cref="StoreCheckInterval"/>.
/// </remarks>
public sealed class ThreadEventWatcher(IThreadStore store, IThreadEventBus bus, IOptions<ThreadEventReaderOptions>? options = null)
{
    private readonly bool _checkStorePeriodically = options?.Value.CheckStoreWhenIdle ?? false;

    /// <summary>How often the store is read again when the bus may lose messages (2 s).</summary>
    public static readonly TimeSpan StoreCheckInterval = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Returns the first event of thread <paramref name="threadId"/> with a sequence greater than
    /// <paramref name="afterSequence"/> that <paramref name="match"/> accepts, stored or yet to come, or null once
    /// <paramref name="cancellationToken"/> is cancelled first. <paramref name="match"/> runs on the publishing thread
    /// too: keep it cheap.
    /// </summary>
    /// <remarks>
    /// Cancellation ends the wait without an exception: every run waits here until it ends, and a cancelled wait that
    /// threw cost five exceptions per run (thrown and rethrown through the awaits), ≈ 12 µs of the run's fixed cost in
    /// the C = 1,000 burst (docs/benchmarks.md). The token and the periodic store check wake the subscription instead
    /// (<see cref="ThreadEventSubscription.Wake"/>), as the streams' reader does. Only a cancellation that lands inside
    /// a read of the store still surfaces as <see cref="OperationCanceledException"/>.
    /// </remarks>
    public async Task<ThreadEvent?> WaitForAsync(Guid threadId, long afterSequence, Func<ThreadEvent, bool> match, CancellationToken cancellationToken)
    {
        var storedUpTo = afterSequence;
        while (!cancellationToken.IsCancellationRequested)
        {
            using var subscription = bus.Subscribe(threadId);
            subscription.Accepts = match;
            using var cancelled = cancellationToken.UnsafeRegister(static s => ((ThreadEventSubscription)s!).Wake(), subscription);
            using var storeCheck = _checkStorePeriodically
                ? new Timer(static s => ((ThreadEventSubscription)s!).Wake(), subscription, StoreCheckInterval, StoreCheckInterval)
                : null;
            var reader = subscription.Reader;
            while (!cancellationToken.IsCancellationRequested)
            {
                var (found, last) = await FindStoredAsync(threadId, storedUpTo, match, cancellationToken);
                if (found is not null) return found;
                storedUpTo = last;
                while (reader.TryRead(out var live))
                    if (live.Sequence > afterSequence && match(live)) return live; // a wake-up item has sequence −1
                // After the drain: a cancellation's wake-up item may have been read above, and only the token says so.
                if (cancellationToken.IsCancellationRequested) return null;
                // Woken by an accepted event, the token, the store check, or completion (the subscription overflowed or
                // a backplane asked it to resync: subscribe again, then read the store).
                if (!await reader.WaitToReadAsync(CancellationToken.None)) break;
            }
        }
        return null;
    }

    // The first stored match after `after`, or null and the last sequence read.
    private async Task<(ThreadEvent? Found, long Last)> FindStoredAsync(Guid threadId, long after, Func<ThreadEvent, bool> match, CancellationToken cancellationToken)
    {
        await foreach (var e in ThreadEventReader.ReadStoredAsync(store, threadId, after, long.MaxValue, cancellationToken))
        {
            if (match(e)) return (e, e.Sequence);
            after = e.Sequence;
        }
        return (null, after);
    }
}
