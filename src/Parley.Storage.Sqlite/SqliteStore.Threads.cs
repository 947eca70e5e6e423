using System.Text.Json;
using Microsoft.Data.Sqlite;
using Parley.Core;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Storage.Sqlite;

public sealed partial class SqliteStore : IThreadStore
{
    // The thread's columns as ReadThreadRow reads them, but for last_sequence, which an insert writes (ThreadColumns)
    // and a read computes (ThreadSelectColumns).
    private const string ThreadColumnsBeforeSequence =
        "id, organization_id, agent_id, agent_version_id, channel, metadata, variables, state, is_active, created_at, updated_at, closed_at, closed_reason, window_expires_at";

    private const string ThreadColumns = ThreadColumnsBeforeSequence + ", last_sequence";

    // A write that appends only message.delta events leaves its thread's row as it is (ThreadChange.OnlyDeltas): a streaming reply
    // rewrote the row's page on every delta, the second of the two pages each delta wrote to the WAL. A thread's last
    // sequence is therefore the row's or its last event's, whichever is higher; the event log is append-only (no
    // event is ever deleted), and its primary key (thread_id, sequence) finds the last row in one seek. A row may hold
    // several deltas (EventInserter): its last event is last_sequence's.
    private const string LastSequenceOfThread =
        "max(threads.last_sequence, coalesce((SELECT coalesce(e.last_sequence, e.sequence) FROM thread_events e WHERE e.thread_id = threads.id ORDER BY e.sequence DESC LIMIT 1), 0))";

    private const string ThreadSelectColumns = ThreadColumnsBeforeSequence + ", " + LastSequenceOfThread;

    private const string MessageColumns = "m.id, m.thread_id, t.organization_id, m.direction, m.body, m.status, m.run_id, m.quick_replies, m.sequence, m.created_at, m.input_tokens, m.output_tokens";
    private const string RunColumns = "id, thread_id, organization_id, agent_version_id, input_message_id, status, created_at, started_at, ended_at, error, input_tokens, output_tokens";

    /// <inheritdoc />
    public Task CreateThreadAsync(ThreadChange change, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>((connection, tx) =>
        {
            using (var insert = Command(connection, $"""
                INSERT INTO threads ({ThreadColumns}) VALUES ($id, $org, $agent, $version, $channel, $metadata, $variables, $state, $active,
                    $created, $updated, $closed, $reason, $expires, $sequence)
                """, tx, ThreadParameters(change.Thread)))
                insert.ExecuteNonQuery();
            WriteChildren(connection, tx, change);
            ThreadWritten(change.Thread.Id, AsInserted(change.Thread));
            return (true, change.Events);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<ChatThread?> GetThreadAsync(Guid id, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        return Task.FromResult(ReadThreadCached(connection, id, null));
    }

    /// <inheritdoc />
    public Task<TResult> UpdateThreadAsync<TResult>(Guid threadId, Func<ThreadChange, TResult> decide, CancellationToken cancellationToken = default) =>
        UpdateThreadAsync(threadId, decide, WritePriority.Normal, cancellationToken);

    /// <inheritdoc />
    public Task<TResult> UpdateThreadAsync<TResult>(Guid threadId, Func<ThreadChange, TResult> decide, WritePriority priority, CancellationToken cancellationToken = default) =>
        WriteAsync<TResult>((connection, tx) =>
        {
            var thread = ReadThreadForWrite(connection, threadId, tx) ?? throw new KeyNotFoundException($"No thread {threadId}.");
            var change = new ThreadChange(thread, _time.GetUtcNow());
            var result = decide(change);
            if (change.IsEmpty) return (result, []);
            ChatThread written;
            var original = change.Original;
            if (change.OnlyDeltas)
            {
                // The row is left as it is: its last sequence is read from the log (LastSequenceOfThread), and its
                // updated_at moves with the reply's message, not with each of its deltas (ThreadChange.Thread).
                written = thread with { LastSequence = change.LastSequence };
            }
            else if (change.OnlyAppends)
            {
                // Only events and rows were added, one of them not a delta (a message, a run's step): no need to
                // serialize the thread's variables and state again, nor to copy the thread record more than once.
                written = thread with { LastSequence = change.LastSequence, UpdatedAt = change.Now.ToUniversalTime() };
                RawStatement.For(connection, "UPDATE threads SET updated_at = ?1, last_sequence = ?2 WHERE id = ?3")
                    .Bind(1, written.UpdatedAt).Bind(2, written.LastSequence).Bind(3, threadId).Execute();
            }
            else if (change.Thread with { LastSequence = original.LastSequence, UpdatedAt = original.UpdatedAt, WindowExpiresAt = original.WindowExpiresAt } == original)
            {
                // A user's message: rows added and the inactivity window restarted.
                RawStatement.For(connection, "UPDATE threads SET updated_at = ?1, last_sequence = ?2, window_expires_at = ?3 WHERE id = ?4")
                    .Bind(1, change.Thread.UpdatedAt).Bind(2, change.Thread.LastSequence).Bind(3, change.Thread.WindowExpiresAt)
                    .Bind(4, threadId).Execute();
                written = AsStored(change.Thread, thread);
            }
            else
            {
                using var update = Command(connection, """
                    UPDATE threads SET agent_id = $agent, agent_version_id = $version, variables = $variables, state = $state, is_active = $active, updated_at = $updated, closed_at = $closed,
                        closed_reason = $reason, window_expires_at = $expires, last_sequence = $sequence
                    WHERE id = $id
                    """, tx, UpdatedThreadParameters(change.Thread));
                update.ExecuteNonQuery();
                written = AsStored(change.Thread, thread);
            }
            WriteChildren(connection, tx, change);
            ThreadWritten(threadId, written);
            return (result, change.Events);
        }, cancellationToken, priority);

    /// <inheritdoc />
    /// <remarks>
    /// A row may hold a run of deltas (<see cref="EventInserter"/>), so the rows read start at the last one that begins
    /// at or before <paramref name="afterSequence"/>, and its events up to <paramref name="afterSequence"/> are skipped.
    /// Throws <see cref="InvalidDataException"/> for a row whose data does not split into as many events as its
    /// sequence range names.
    /// </remarks>
    public Task<IReadOnlyList<ThreadEvent>> ReadEventsAsync(Guid threadId, long afterSequence, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        using var connection = Open();
        using var query = Command(connection, """
            SELECT sequence, type, run_id, created_at, data, last_sequence FROM thread_events
            WHERE thread_id = $thread AND coalesce(last_sequence, sequence) > $after
              AND sequence >= coalesce((SELECT sequence FROM thread_events WHERE thread_id = $thread AND sequence <= $after ORDER BY sequence DESC LIMIT 1), 0)
            ORDER BY sequence LIMIT $limit
            """, null,
            ("$thread", Text(threadId)), ("$after", afterSequence), ("$limit", limit));
        using var r = query.ExecuteReader();
        var events = new List<ThreadEvent>();
        while (events.Count < limit && r.Read())
            AddRowEvents(events, limit, afterSequence, threadId, r.GetInt64(0), r.IsDBNull(5) ? null : r.GetInt64(5), r.GetString(1),
                ReadNullableGuid(r, 2), ReadTime(r, 3), r.GetString(4));
        return Task.FromResult<IReadOnlyList<ThreadEvent>>(events);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<ThreadMessage>> ListMessagesAsync(Guid threadId, long afterSequence, int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<ThreadMessage>>(QueryMessages($"""
            SELECT {MessageColumns} FROM messages m JOIN threads t ON t.id = m.thread_id
            WHERE m.thread_id = $thread AND m.sequence > $after ORDER BY m.sequence LIMIT $limit
            """, ("$thread", Text(threadId)), ("$after", afterSequence), ("$limit", limit)));

    /// <inheritdoc />
    public Task<IReadOnlyList<ThreadMessage>> ListMessagesBeforeAsync(Guid threadId, long beforeSequence, int limit, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<ThreadMessage>>(QueryMessages($"""
            SELECT {MessageColumns} FROM messages m JOIN threads t ON t.id = m.thread_id
            WHERE m.thread_id = $thread AND m.sequence < $before ORDER BY m.sequence DESC LIMIT $limit
            """, ("$thread", Text(threadId)), ("$before", beforeSequence), ("$limit", limit)));

    /// <inheritdoc />
    public Task<ThreadMessage?> GetMessageAsync(Guid id, CancellationToken cancellationToken = default) =>
        Task.FromResult(QueryMessages($"SELECT {MessageColumns} FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.id = $id",
            ("$id", Text(id))).FirstOrDefault());

    private List<ThreadMessage> QueryMessages(string sql, params (string, object?)[] parameters)
    {
        using var connection = Open();
        using var query = Command(connection, sql, null, parameters);
        using var r = query.ExecuteReader();
        var messages = new List<ThreadMessage>();
        while (r.Read())
            messages.Add(new ThreadMessage
            {
                Id = ReadGuid(r, 0),
                ThreadId = ReadGuid(r, 1),
                OrganizationId = ReadGuid(r, 2),
                Direction = Enum.Parse<MessageDirection>(r.GetString(3)),
                MessageBody = r.GetString(4),
                Status = Enum.Parse<MessageStatus>(r.GetString(5)),
                RunId = ReadNullableGuid(r, 6),
                QuickReplies = r.IsDBNull(7) ? [] : JsonSerializer.Deserialize(r.GetString(7), CoreJsonContext.Payloads.ListString)!,
                Sequence = r.GetInt64(8),
                CreatedAt = ReadTime(r, 9),
                Usage = ReadUsage(r, 10),
            });
        return messages;
    }

    /// <inheritdoc />
    public Task<Run?> GetRunAsync(Guid id, CancellationToken cancellationToken = default) =>
        Task.FromResult(QueryRuns($"SELECT {RunColumns} FROM runs WHERE id = $id", ("$id", Text(id))).FirstOrDefault());

    /// <inheritdoc />
    public Task<Run?> GetNextPendingRunAsync(Guid threadId, CancellationToken cancellationToken = default) =>
        Task.FromResult(QueryRuns($"SELECT {RunColumns} FROM runs WHERE thread_id = $thread AND status = 'pending' ORDER BY rowid LIMIT 1",
            ("$thread", Text(threadId))).FirstOrDefault());

    /// <inheritdoc />
    public Task<IReadOnlyList<Run>> ListUnfinishedRunsAsync(CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<Run>>(QueryRuns($"SELECT {RunColumns} FROM runs WHERE status IN ('pending', 'running') ORDER BY rowid"));

    /// <inheritdoc />
    public Task<IReadOnlyList<ChatThread>> ListThreadsAsync(ThreadQuery query, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        var sql = new System.Text.StringBuilder($"SELECT {ThreadSelectColumns} FROM threads WHERE organization_id = $org");
        var parameters = new List<(string, object?)> { ("$org", Text(query.OrganizationId)) };
        if (query.AgentId is { } agentId)
        {
            sql.Append(" AND agent_id = $agent");
            parameters.Add(("$agent", Text(agentId)));
        }
        var i = 0;
        foreach (var (key, value) in query.Metadata)
        {
            // json_extract with a quoted key: any key text is matched literally, never as a path.
            sql.Append($" AND json_extract(metadata, $key{i}) = $value{i}");
            parameters.Add(($"$key{i}", "$.\"" + key.Replace("\"", "\\\"", StringComparison.Ordinal) + "\""));
            parameters.Add(($"$value{i}", value));
            i++;
        }
        if (query.Ids is { } ids)
        {
            sql.Append(" AND id IN (SELECT value FROM json_each($ids))");
            parameters.Add(("$ids", JsonSerializer.Serialize(ids.Select(id => Text(id)!).ToList(), CoreJsonContext.Payloads.ListString)));
        }
        sql.Append(" ORDER BY created_at DESC, id DESC LIMIT $limit OFFSET $offset");
        parameters.Add(("$limit", query.Limit));
        parameters.Add(("$offset", query.Offset));
        using var command = Command(connection, sql.ToString(), null, [.. parameters]);
        using var r = command.ExecuteReader();
        var threads = new List<ChatThread>();
        while (r.Read()) threads.Add(ReadThreadRow(r));
        return Task.FromResult<IReadOnlyList<ChatThread>>(threads);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<Run>> ListRunsAsync(Guid threadId, int limit, int offset, CancellationToken cancellationToken = default) =>
        Task.FromResult<IReadOnlyList<Run>>(QueryRuns($"SELECT {RunColumns} FROM runs WHERE thread_id = $thread ORDER BY rowid DESC LIMIT $limit OFFSET $offset",
            ("$thread", Text(threadId)), ("$limit", limit), ("$offset", offset)));

    /// <inheritdoc />
    public Task<bool> DeleteThreadAsync(Guid threadId, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>((connection, tx) =>
        {
            foreach (var table in new[] { "thread_events", "messages", "runs" })
            {
                using var delete = Command(connection, $"DELETE FROM {table} WHERE thread_id = $thread", tx, ("$thread", Text(threadId)));
                delete.ExecuteNonQuery();
            }
            OrganizationWritten(); // its runs' usage leaves the organization's total
            using var deleteThread = Command(connection, "DELETE FROM threads WHERE id = $thread", tx, ("$thread", Text(threadId)));
            var deleted = deleteThread.ExecuteNonQuery() > 0;
            ThreadWritten(threadId, null);
            return (deleted, []);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<Guid>> ListExpiredThreadsAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        using var query = Command(connection, "SELECT id FROM threads WHERE is_active = 1 AND window_expires_at < $now ORDER BY window_expires_at LIMIT $limit", null,
            ("$now", Text(now)), ("$limit", limit));
        using var r = query.ExecuteReader();
        var ids = new List<Guid>();
        while (r.Read()) ids.Add(ReadGuid(r, 0));
        return Task.FromResult<IReadOnlyList<Guid>>(ids);
    }

    /// <inheritdoc />
    public Task<OrganizationUsage> GetOrganizationUsageAsync(Guid organizationId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        using var connection = Open();
        using var query = Command(connection, """
            SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) FROM runs
            WHERE organization_id = $org AND created_at >= $from AND created_at < $to AND input_tokens IS NOT NULL
            """, null, ("$org", Text(organizationId)), ("$from", Text(from)), ("$to", Text(to)));
        using var r = query.ExecuteReader();
        r.Read();
        return Task.FromResult(new OrganizationUsage(r.GetInt64(0), new Core.Models.TokenUsage(r.GetInt64(1), r.GetInt64(2))));
    }

    private static Core.Models.TokenUsage? ReadUsage(SqliteDataReader r, int i) =>
        r.IsDBNull(i) ? null : new Core.Models.TokenUsage(r.GetInt64(i), r.IsDBNull(i + 1) ? 0 : r.GetInt64(i + 1));

    private List<Run> QueryRuns(string sql, params (string, object?)[] parameters)
    {
        using var connection = Open();
        using var query = Command(connection, sql, null, parameters);
        using var r = query.ExecuteReader();
        var runs = new List<Run>();
        while (r.Read())
            runs.Add(new Run(ReadGuid(r, 0), ReadGuid(r, 1), ReadGuid(r, 2), ReadGuid(r, 3), ReadNullableGuid(r, 4), Enum.Parse<RunStatus>(r.GetString(5)),
                ReadTime(r, 6), ReadNullableTime(r, 7), ReadNullableTime(r, 8), ReadNullableString(r, 9), ReadUsage(r, 10)));
        return runs;
    }

    private void WriteChildren(SqliteConnection connection, SqliteTransaction tx, ThreadChange change)
    {
        // Index loops, not foreach or LINQ: on these interfaces each is an allocation, and this runs for every write.
        var runs = change.Runs;
        var mayChangeTokensUsed = change.DeletedRuns.Count > 0;
        for (var i = 0; i < runs.Count && !mayChangeTokensUsed; i++) mayChangeTokensUsed = MayChangeTokensUsed(runs[i]);
        if (mayChangeTokensUsed) OrganizationWritten();
        for (var i = 0; i < change.DeletedRuns.Count; i++)
        {
            var runId = change.DeletedRuns[i];
            using var deleteMessages = Command(connection, "DELETE FROM messages WHERE thread_id = $thread AND run_id = $run", tx,
                ("$thread", Text(change.Thread.Id)), ("$run", Text(runId)));
            deleteMessages.ExecuteNonQuery();
            using var deleteRun = Command(connection, "DELETE FROM runs WHERE id = $run", tx, ("$run", Text(runId)));
            deleteRun.ExecuteNonQuery();
        }
        for (var i = 0; i < change.Messages.Count; i++)
        {
            var m = change.Messages[i];
            RawStatement.For(connection, """
                INSERT INTO messages (id, thread_id, direction, body, status, run_id, quick_replies, sequence, created_at, input_tokens, output_tokens)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                """)
                .Bind(1, m.Id).Bind(2, m.ThreadId).Bind(3, m.Direction.ToString()).Bind(4, m.MessageBody)
                .Bind(5, m.Status.ToString()).Bind(6, m.RunId)
                .Bind(7, m.QuickReplies.Count == 0 ? null : JsonSerializer.Serialize(m.QuickReplies.ToList(), CoreJsonContext.Payloads.ListString))
                .Bind(8, m.Sequence).Bind(9, m.CreatedAt).Bind(10, m.Usage?.InputTokens).Bind(11, m.Usage?.OutputTokens)
                .Execute();
        }
        for (var i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            using var upsert = Command(connection, $"""
                INSERT INTO runs ({RunColumns}) VALUES ($id, $thread, $org, $version, $input, $status, $created, $started, $ended, $error, $inTokens, $outTokens)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, started_at = excluded.started_at, ended_at = excluded.ended_at, error = excluded.error,
                    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens
                """, tx,
                ("$id", Text(run.Id)), ("$thread", Text(run.ThreadId)), ("$org", Text(run.OrganizationId)), ("$version", Text(run.AgentVersionId)),
                ("$input", Text(run.InputMessageId)), ("$status", run.Status.ToString()), ("$created", Text(run.CreatedAt)),
                ("$started", Text(run.StartedAt)), ("$ended", Text(run.EndedAt)), ("$error", run.Error),
                ("$inTokens", run.Usage?.InputTokens), ("$outTokens", run.Usage?.OutputTokens));
            upsert.ExecuteNonQuery();
        }
        if (change.Events.Count > 0) EventInserter.For(connection).Insert(change.Events);
    }

    private static (string, object?)[] ThreadParameters(ChatThread t) =>
    [
        ("$id", Text(t.Id)), ("$org", Text(t.OrganizationId)), ("$agent", Text(t.AgentId)), ("$version", Text(t.AgentVersionId)),
        ("$channel", t.Channel),
        ("$metadata", JsonSerializer.Serialize(t.Metadata, CoreJsonContext.Payloads.IReadOnlyDictionaryStringString)),
        ("$variables", JsonSerializer.Serialize(t.Variables, CoreJsonContext.Payloads.IReadOnlyDictionaryStringString)),
        ("$state", JsonSerializer.Serialize(t.State, CoreJsonContext.Payloads.ChatThreadState)),
        ("$active", t.IsActive ? 1 : 0), ("$created", Text(t.CreatedAt)), ("$updated", Text(t.UpdatedAt)), ("$closed", Text(t.ClosedAt)),
        ("$reason", t.ClosedReason), ("$expires", Text(t.WindowExpiresAt)), ("$sequence", t.LastSequence),
    ];

    // The columns an update writes (metadata, channel, organization and creation time never change).
    private static (string, object?)[] UpdatedThreadParameters(ChatThread t) =>
    [
        ("$id", Text(t.Id)), ("$agent", Text(t.AgentId)), ("$version", Text(t.AgentVersionId)),
        ("$variables", JsonSerializer.Serialize(t.Variables, CoreJsonContext.Payloads.IReadOnlyDictionaryStringString)),
        ("$state", JsonSerializer.Serialize(t.State, CoreJsonContext.Payloads.ChatThreadState)),
        ("$active", t.IsActive ? 1 : 0), ("$updated", Text(t.UpdatedAt)), ("$closed", Text(t.ClosedAt)),
        ("$reason", t.ClosedReason), ("$expires", Text(t.WindowExpiresAt)), ("$sequence", t.LastSequence),
    ];

    private static ChatThread? ReadThread(SqliteConnection connection, Guid id, SqliteTransaction? tx)
    {
        using var query = Command(connection, $"SELECT {ThreadSelectColumns} FROM threads WHERE id = $id", tx, ("$id", Text(id)));
        using var r = query.ExecuteReader();
        return r.Read() ? ReadThreadRow(r) : null;
    }

    private static ChatThread ReadThreadRow(SqliteDataReader r) =>
        new()
        {
            Id = ReadGuid(r, 0),
            OrganizationId = ReadGuid(r, 1),
            AgentId = ReadNullableGuid(r, 2),
            AgentVersionId = ReadNullableGuid(r, 3),
            Channel = r.GetString(4),
            Metadata = JsonSerializer.Deserialize(r.GetString(5), CoreJsonContext.Payloads.DictionaryStringString)!,
            Variables = JsonSerializer.Deserialize(r.GetString(6), CoreJsonContext.Payloads.DictionaryStringString)!,
            State = JsonSerializer.Deserialize(r.GetString(7), CoreJsonContext.Payloads.ChatThreadState)!,
            IsActive = r.GetInt64(8) == 1,
            CreatedAt = ReadTime(r, 9),
            UpdatedAt = ReadTime(r, 10),
            ClosedAt = ReadNullableTime(r, 11),
            ClosedReason = ReadNullableString(r, 12),
            WindowExpiresAt = ReadTime(r, 13),
            LastSequence = r.GetInt64(14),
        };
}
