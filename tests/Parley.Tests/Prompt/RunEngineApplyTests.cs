using System.Text.Json;
using Parley.Core.Agents;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Threads;

namespace Parley.Tests.Prompt;

/// <summary>
/// A run's text deltas are serialized before its write (off the store's writer thread); the deltas a client sees must
/// still name the message they become, also when one write holds the end of one message and the start of the next.
/// </summary>
public sealed class RunEngineApplyTests
{
    [Fact]
    public void Deltas_name_the_message_they_build_across_a_finished_message_in_the_same_write()
    {
        var now = DateTimeOffset.UtcNow;
        var thread = new ChatThread
        {
            Id = Guid.CreateVersion7(),
            OrganizationId = Guid.CreateVersion7(),
            AgentId = Guid.CreateVersion7(),
            AgentVersionId = Guid.CreateVersion7(),
            Metadata = new Dictionary<string, string>(),
            Variables = new Dictionary<string, string>(),
            CreatedAt = now,
            UpdatedAt = now,
            WindowExpiresAt = now.AddHours(1),
            LastSequence = 7,
        };
        var run = new Run(Guid.CreateVersion7(), thread.Id, thread.OrganizationId, thread.AgentVersionId!.Value, null, RunStatus.running, now, now, null, null);
        var progress = new RunEngine.RunProgress();
        List<AgentUpdate> batch =
        [
            new TextDeltaUpdate("Hel"), new TextDeltaUpdate("lo"), new OutboundMessageUpdate("Hello", []),
            new TextDeltaUpdate("Bye"),
        ];
        var deltas = new List<RunEngine.PreparedDelta?>();
        RunEngine.PrepareDeltas(batch, progress.PendingMessageId, now, deltas);

        var change = new ThreadChange(thread, now);
        for (var i = 0; i < batch.Count; i++) RunEngine.Apply(change, run, batch[i], progress, deltas[i]);

        Assert.Equal([8L, 9L, 10L, 11L], change.Events.Select(e => e.Sequence));
        Assert.Equal([ThreadEventTypes.MessageDelta, ThreadEventTypes.MessageDelta, ThreadEventTypes.MessageCreated, ThreadEventTypes.MessageDelta], change.Events.Select(e => e.Type));
        var message = Assert.Single(change.Messages);
        string MessageIdOf(ThreadEvent e) => JsonDocument.Parse(e.Data).RootElement.GetProperty("messageId").GetString()!;
        Assert.Equal(message.Id.ToString(), MessageIdOf(change.Events[0]));
        Assert.Equal(message.Id.ToString(), MessageIdOf(change.Events[1]));
        Assert.Equal("Hel", JsonDocument.Parse(change.Events[0].Data).RootElement.GetProperty("delta").GetString());
        // The delta after the finished message starts the next one: a new id, which the run keeps for its next write.
        Assert.NotEqual(message.Id.ToString(), MessageIdOf(change.Events[3]));
        Assert.Equal(progress.PendingMessageId.ToString(), MessageIdOf(change.Events[3]));
        // Where the unfinished message's text starts in the log (read back if the run ends without it): its first delta.
        Assert.Equal(11L, progress.PendingFromSequence);

        // The next write continues that message, which still starts where it started.
        var next = new List<RunEngine.PreparedDelta?>();
        RunEngine.PrepareDeltas([new TextDeltaUpdate("!")], progress.PendingMessageId, now, next);
        Assert.Equal(progress.PendingMessageId, Assert.Single(next)!.Value.MessageId);
        RunEngine.Apply(new ThreadChange(thread with { LastSequence = 11 }, now), run, new TextDeltaUpdate("!"), progress, next[0]);
        Assert.Equal(11L, progress.PendingFromSequence);
    }

    [Fact]
    public void A_text_delta_without_its_prepared_data_is_refused()
    {
        var now = DateTimeOffset.UtcNow;
        var thread = new ChatThread
        {
            Id = Guid.CreateVersion7(), OrganizationId = Guid.CreateVersion7(), AgentId = Guid.CreateVersion7(), AgentVersionId = Guid.CreateVersion7(),
            Metadata = new Dictionary<string, string>(), Variables = new Dictionary<string, string>(), CreatedAt = now, UpdatedAt = now, WindowExpiresAt = now.AddHours(1),
        };
        var run = new Run(Guid.CreateVersion7(), thread.Id, thread.OrganizationId, thread.AgentVersionId!.Value, null, RunStatus.running, now, now, null, null);
        var change = new ThreadChange(thread, now);
        Assert.Throws<ArgumentException>(() => RunEngine.Apply(change, run, new TextDeltaUpdate("x"), new RunEngine.RunProgress(), null));
        Assert.Empty(change.Events);
    }
}
