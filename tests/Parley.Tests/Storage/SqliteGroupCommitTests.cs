using Microsoft.Extensions.DependencyInjection;
using Parley.Core.Storage;
using Parley.Core.Threads;
using Parley.Tests.Infrastructure;

namespace Parley.Tests.Storage;

/// <summary>
/// The SQLite store commits writes queued at the same time in one transaction (group commit): each write must still
/// be all-or-nothing on its own, and sequence numbers must stay gap-free per thread.
/// </summary>
public sealed class SqliteGroupCommitTests
{
    [Fact]
    public async Task A_write_that_fails_among_concurrent_writes_leaves_nothing_behind_and_the_others_are_stored()
    {
        await using var server = await ParleyTestServer.StartAsync();
        var store = server.Services.GetRequiredService<IThreadStore>();
        var threads = new List<Guid>();
        for (var i = 0; i < 20; i++)
            threads.Add(Guid.Parse((await server.Client.CreateThreadAsync(ParleyTestServer.LeadQualifierId)).GetProperty("id").GetString()!));
        var before = new Dictionary<Guid, long>();
        foreach (var id in threads) before[id] = (await store.GetThreadAsync(id))!.LastSequence;
        var failing = threads[7];

        var messageId = Guid.CreateVersion7();

        // Three writes per thread, all queued at once. On the failing thread the first write stores a message and the
        // second stores it again: the database refuses it after the thread row was already updated in that write, so
        // only rolling back that write alone keeps the thread row, its log and the other writes consistent.
        var writes = threads.SelectMany(id => Enumerable.Range(0, 3).Select(n => store.UpdateThreadAsync(id, change =>
        {
            change.AppendRaw("test.event", null, $$"""{"n":{{n}}}""");
            if (id == failing && n < 2)
                change.AddMessage(new ThreadMessage
                {
                    Id = messageId,
                    ThreadId = id,
                    OrganizationId = change.Thread.OrganizationId,
                    Direction = MessageDirection.OUTBOUND,
                    MessageBody = $"attempt {n}",
                    Status = MessageStatus.SENT,
                    CreatedAt = change.Now,
                });
            return n;
        }))).ToList();
        await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => Task.WhenAll(writes));
        Assert.Equal(1, writes.Count(w => w.IsFaulted));

        foreach (var id in threads)
        {
            var appended = await store.ReadEventsAsync(id, before[id], 100);
            var expected = 3; // the failing thread: the first write's two events and the third write's one
            if (id == failing) Assert.Equal(["test.event", "message.created", "test.event"], appended.Select(e => e.Type));
            Assert.Equal(expected, appended.Count);
            Assert.Equal(Enumerable.Range(1, expected).Select(i => before[id] + i), appended.Select(e => e.Sequence)); // gap-free
            Assert.Equal(before[id] + expected, (await store.GetThreadAsync(id))!.LastSequence);
        }
    }
}
