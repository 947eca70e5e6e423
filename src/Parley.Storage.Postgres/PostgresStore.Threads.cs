using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Parley.Core;
using Parley.Core.Events;
using Parley.Core.Runs;
using Parley.Core.Storage;
using Parley.Core.Threads;

namespace Parley.Storage.Postgres;

public sealed partial class PostgresStore : IThreadStore
{
    private const string ThreadColumns =
        "id, organization_id, agent_id, agent_version_id, channel, metadata, variables, state, is_active, created_at, updated_at, closed_at, closed_reason, window_expires_at, last_sequence";
    private const string MessageColumns = "m.id, m.thread_id, t.organization_id, m.direction, m.body, m.status, m.run_id, m.quick_replies, m.sequence, m.created_at, m.input_tokens, m.output_tokens";
    internal const string RunColumns = "id, thread_id, organization_id, agent_version_id, input_message_id, status, created_at, started_at, ended_at, error, input_tokens, output_tokens";

    /// <inheritdoc />
    public Task CreateThreadAsync(ThreadChange change, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>(async (connection, tx) =>
        {
            await using (var insert = Command(connection, $"""
                INSERT INTO threads ({ThreadColumns}) VALUES (@id, @org, @agent, @version, @channel, @metadata, @variables, @state, @active,
                    @created, @updated, @closed, @reason, @expires, @sequence)
                """, tx, ThreadParameters(change.Thread)))
                await insert.ExecuteNonQueryAsync(cancellationToken);
            await WriteChildrenAsync(connection, tx, change, cancellationToken);
            return (true, change.Events);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<ChatThread?> GetThreadAsync(Guid id, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        return await ReadThreadAsync(connection, null, id, forUpdate: false, cancellationToken);
    }

    /// <inheritdoc />
    public Task<TResult> UpdateThreadAsync<TResult>(Guid threadId, Func<ThreadChange, TResult> decide, CancellationToken cancellationToken = default) =>
        WriteAsync<TResult>(async (connection, tx) =>
        {
            // The row lock is the thread's write lock across every node: a second writer waits here until this
            // transaction commits, then reads the new last_sequence.
            var thread = await ReadThreadAsync(connection, tx, threadId, forUpdate: true, cancellationToken) ?? throw new KeyNotFoundException($"No thread {threadId}.");
            var change = new ThreadChange(thread, Now());
            var result = decide(change);
            if (change.IsEmpty) return (result, []);
            // The thread row's update travels in the same batch (one round trip) as the messages, runs and events.
            var update = BatchCommand("""
                UPDATE threads SET agent_id = @agent, agent_version_id = @version, variables = @variables, state = @state, is_active = @active, updated_at = @updated, closed_at = @closed,
                    closed_reason = @reason, window_expires_at = @expires, last_sequence = @sequence
                WHERE id = @id
                """, ThreadParameters(change.Thread));
            await WriteChildrenAsync(connection, tx, change, cancellationToken, update);
            return (result, change.Events);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<ThreadEvent>> ReadEventsAsync(Guid threadId, long afterSequence, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        await using var query = Query(
            "SELECT sequence, type, run_id, created_at, data FROM thread_events WHERE thread_id = @thread AND sequence > @after ORDER BY sequence LIMIT @limit",
            ("thread", threadId), ("after", afterSequence), ("limit", limit));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var events = new List<ThreadEvent>();
        while (await r.ReadAsync(cancellationToken))
            events.Add(new ThreadEvent(threadId, r.GetInt64(0), r.GetString(1), ReadNullableGuid(r, 2), ReadTime(r, 3), r.GetString(4)));
        return events;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ThreadMessage>> ListMessagesAsync(Guid threadId, long afterSequence, int limit, CancellationToken cancellationToken = default) =>
        await QueryMessagesAsync($"""
            SELECT {MessageColumns} FROM messages m JOIN threads t ON t.id = m.thread_id
            WHERE m.thread_id = @thread AND m.sequence > @after ORDER BY m.sequence LIMIT @limit
            """, cancellationToken, ("thread", threadId), ("after", afterSequence), ("limit", limit));

    /// <inheritdoc />
    public async Task<IReadOnlyList<ThreadMessage>> ListMessagesBeforeAsync(Guid threadId, long beforeSequence, int limit, CancellationToken cancellationToken = default) =>
        await QueryMessagesAsync($"""
            SELECT {MessageColumns} FROM messages m JOIN threads t ON t.id = m.thread_id
            WHERE m.thread_id = @thread AND m.sequence < @before ORDER BY m.sequence DESC LIMIT @limit
            """, cancellationToken, ("thread", threadId), ("before", beforeSequence), ("limit", limit));

    /// <inheritdoc />
    public async Task<ThreadMessage?> GetMessageAsync(Guid id, CancellationToken cancellationToken = default) =>
        (await QueryMessagesAsync($"SELECT {MessageColumns} FROM messages m JOIN threads t ON t.id = m.thread_id WHERE m.id = @id", cancellationToken, ("id", id))).FirstOrDefault();

    private async Task<List<ThreadMessage>> QueryMessagesAsync(string sql, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        await using var query = Query(sql, parameters);
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var messages = new List<ThreadMessage>();
        while (await r.ReadAsync(cancellationToken))
            messages.Add(new ThreadMessage
            {
                Id = r.GetGuid(0),
                ThreadId = r.GetGuid(1),
                OrganizationId = r.GetGuid(2),
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
    public async Task<Run?> GetRunAsync(Guid id, CancellationToken cancellationToken = default) =>
        (await QueryRunsAsync($"SELECT {RunColumns} FROM runs WHERE id = @id", cancellationToken, ("id", id))).FirstOrDefault();

    /// <inheritdoc />
    public async Task<Run?> GetNextPendingRunAsync(Guid threadId, CancellationToken cancellationToken = default) =>
        (await QueryRunsAsync($"SELECT {RunColumns} FROM runs WHERE thread_id = @thread AND status = 'pending' ORDER BY queue_position LIMIT 1",
            cancellationToken, ("thread", threadId))).FirstOrDefault();

    /// <inheritdoc />
    public async Task<IReadOnlyList<Run>> ListUnfinishedRunsAsync(CancellationToken cancellationToken = default) =>
        await QueryRunsAsync($"SELECT {RunColumns} FROM runs WHERE status IN ('pending', 'running') ORDER BY queue_position", cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<ChatThread>> ListThreadsAsync(ThreadQuery query, CancellationToken cancellationToken = default)
    {
        var sql = new System.Text.StringBuilder($"SELECT {ThreadColumns} FROM threads WHERE organization_id = @org");
        var parameters = new List<(string, object?)> { ("org", query.OrganizationId) };
        if (query.AgentId is { } agentId)
        {
            sql.Append(" AND agent_id = @agent");
            parameters.Add(("agent", agentId));
        }
        if (query.Metadata.Count > 0)
        {
            // Containment of {"key":"value",...}: every pair present with exactly that string value; keys are matched
            // literally (never as a path), as SqliteStore's quoted json_extract does.
            sql.Append(" AND metadata::jsonb @> @metadata::jsonb");
            parameters.Add(("metadata", JsonSerializer.Serialize(query.Metadata, CoreJsonContext.Payloads.IReadOnlyDictionaryStringString)));
        }
        if (query.Ids is { } ids)
        {
            sql.Append(" AND id = ANY(@ids)");
            parameters.Add(("ids", ids.ToArray()));
        }
        sql.Append(" ORDER BY created_at DESC, id DESC LIMIT @limit OFFSET @offset");
        parameters.Add(("limit", query.Limit));
        parameters.Add(("offset", query.Offset));
        await using var command = Query(sql.ToString(), [.. parameters]);
        await using var r = await command.ExecuteReaderAsync(cancellationToken);
        var threads = new List<ChatThread>();
        while (await r.ReadAsync(cancellationToken)) threads.Add(MapThread(r));
        return threads;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<Run>> ListRunsAsync(Guid threadId, int limit, int offset, CancellationToken cancellationToken = default) =>
        await QueryRunsAsync($"SELECT {RunColumns} FROM runs WHERE thread_id = @thread ORDER BY queue_position DESC LIMIT @limit OFFSET @offset",
            cancellationToken, ("thread", threadId), ("limit", limit), ("offset", offset));

    /// <inheritdoc />
    public Task<bool> DeleteThreadAsync(Guid threadId, CancellationToken cancellationToken = default) =>
        WriteAsync<bool>(async (connection, tx) =>
        {
            // The thread's write lock first (as every write and run claim takes it): a writer on another node either
            // committed before, or waits and then finds no thread; nothing can add a child row while this deletes.
            if (await ReadThreadAsync(connection, tx, threadId, forUpdate: true, cancellationToken) is null) return (false, []);
            await using var batch = new NpgsqlBatch(connection, tx);
            foreach (var table in new[] { "thread_events", "messages", "runs" })
                batch.BatchCommands.Add(BatchCommand($"DELETE FROM {table} WHERE thread_id = @thread", ("thread", threadId)));
            batch.BatchCommands.Add(BatchCommand("DELETE FROM threads WHERE id = @thread", ("thread", threadId)));
            await batch.ExecuteNonQueryAsync(cancellationToken);
            return (true, []);
        }, cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<Guid>> ListExpiredThreadsAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken = default)
    {
        await using var query = Query("SELECT id FROM threads WHERE is_active AND window_expires_at < @now ORDER BY window_expires_at LIMIT @limit",
            ("now", now), ("limit", limit));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var ids = new List<Guid>();
        while (await r.ReadAsync(cancellationToken)) ids.Add(r.GetGuid(0));
        return ids;
    }

    /// <inheritdoc />
    public async Task<OrganizationUsage> GetOrganizationUsageAsync(Guid organizationId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default)
    {
        await using var query = Query("""
            SELECT COUNT(*), COALESCE(SUM(input_tokens), 0)::bigint, COALESCE(SUM(output_tokens), 0)::bigint FROM runs
            WHERE organization_id = @org AND created_at >= @from AND created_at < @to AND input_tokens IS NOT NULL
            """, ("org", organizationId), ("from", Clamp(from)), ("to", Clamp(to)));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        await r.ReadAsync(cancellationToken);
        return new OrganizationUsage(r.GetInt64(0), new Core.Models.TokenUsage(r.GetInt64(1), r.GetInt64(2)));
    }

    // DateTimeOffset.MinValue/MaxValue are outside what timestamptz holds comfortably (year 1 BC handling, offsets).
    private static DateTimeOffset Clamp(DateTimeOffset t) =>
        t < new DateTimeOffset(1900, 1, 1, 0, 0, 0, TimeSpan.Zero) ? new DateTimeOffset(1900, 1, 1, 0, 0, 0, TimeSpan.Zero)
        : t > new DateTimeOffset(9000, 1, 1, 0, 0, 0, TimeSpan.Zero) ? new DateTimeOffset(9000, 1, 1, 0, 0, 0, TimeSpan.Zero) : t;

    private static Core.Models.TokenUsage? ReadUsage(NpgsqlDataReader r, int i) =>
        r.IsDBNull(i) ? null : new Core.Models.TokenUsage(r.GetInt64(i), r.IsDBNull(i + 1) ? 0 : r.GetInt64(i + 1));

    private async Task<List<Run>> QueryRunsAsync(string sql, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        await using var query = Query(sql, parameters);
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        var runs = new List<Run>();
        while (await r.ReadAsync(cancellationToken)) runs.Add(MapRun(r));
        return runs;
    }

    internal static Run MapRun(NpgsqlDataReader r) =>
        new(r.GetGuid(0), r.GetGuid(1), r.GetGuid(2), r.GetGuid(3), ReadNullableGuid(r, 4), Enum.Parse<RunStatus>(r.GetString(5)),
            ReadTime(r, 6), ReadNullableTime(r, 7), ReadNullableTime(r, 8), ReadNullableString(r, 9), ReadUsage(r, 10));

    private static async Task WriteChildrenAsync(NpgsqlConnection connection, NpgsqlTransaction tx, ThreadChange change, CancellationToken cancellationToken, NpgsqlBatchCommand? first = null)
    {
        await using var batch = new NpgsqlBatch(connection, tx);
        if (first is not null) batch.BatchCommands.Add(first);
        // A rollback: the run's messages (inbound and outbound, by run id) and then the run.
        foreach (var runId in change.DeletedRuns)
        {
            batch.BatchCommands.Add(BatchCommand("DELETE FROM messages WHERE thread_id = @thread AND run_id = @run", ("thread", change.Thread.Id), ("run", runId)));
            batch.BatchCommands.Add(BatchCommand("DELETE FROM runs WHERE id = @run", ("run", runId)));
        }
        foreach (var m in change.Messages)
            batch.BatchCommands.Add(BatchCommand("""
                INSERT INTO messages (id, thread_id, direction, body, status, run_id, quick_replies, sequence, created_at, input_tokens, output_tokens)
                VALUES (@id, @thread, @direction, @body, @status, @run, @replies, @sequence, @created, @input, @output)
                """,
                ("id", m.Id), ("thread", m.ThreadId), ("direction", m.Direction.ToString()), ("body", m.MessageBody),
                ("status", m.Status.ToString()), ("run", m.RunId),
                ("replies", m.QuickReplies.Count == 0 ? null : JsonSerializer.Serialize(m.QuickReplies.ToList(), CoreJsonContext.Payloads.ListString)),
                ("sequence", m.Sequence), ("created", m.CreatedAt), ("input", m.Usage?.InputTokens), ("output", m.Usage?.OutputTokens)));
        foreach (var run in change.Runs)
            batch.BatchCommands.Add(BatchCommand($"""
                INSERT INTO runs ({RunColumns}) VALUES (@id, @thread, @org, @version, @input, @status, @created, @started, @ended, @error, @inTokens, @outTokens)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, started_at = excluded.started_at, ended_at = excluded.ended_at, error = excluded.error,
                    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens
                """,
                ("id", run.Id), ("thread", run.ThreadId), ("org", run.OrganizationId), ("version", run.AgentVersionId),
                ("input", run.InputMessageId), ("status", run.Status.ToString()), ("created", run.CreatedAt),
                ("started", run.StartedAt), ("ended", run.EndedAt), ("error", run.Error),
                ("inTokens", run.Usage?.InputTokens), ("outTokens", run.Usage?.OutputTokens)));
        if (change.Events.Count > 0)
        {
            // One statement for the whole group commit, however many events it appends.
            var events = change.Events;
            var insert = new NpgsqlBatchCommand("""
                INSERT INTO thread_events (thread_id, sequence, type, run_id, created_at, data)
                SELECT @thread, * FROM unnest(@sequences, @types, @runs, @created, @data)
                """);
            insert.Parameters.Add(new NpgsqlParameter("thread", events[0].ThreadId));
            insert.Parameters.Add(new NpgsqlParameter("sequences", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = events.Select(e => e.Sequence).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter("types", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.Type).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter("runs", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = events.Select(e => e.RunId).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter("created", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = events.Select(e => e.CreatedAt.UtcDateTime).ToArray() });
            insert.Parameters.Add(new NpgsqlParameter("data", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = events.Select(e => e.Data).ToArray() });
            batch.BatchCommands.Add(insert);
        }
        if (batch.BatchCommands.Count > 0) await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlBatchCommand BatchCommand(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var (name, value) in parameters) command.Parameters.Add(Parameter(name, value));
        return command;
    }

    private static (string, object?)[] ThreadParameters(ChatThread t) =>
    [
        ("id", t.Id), ("org", t.OrganizationId), ("agent", t.AgentId), ("version", t.AgentVersionId),
        ("channel", t.Channel),
        ("metadata", JsonSerializer.Serialize(t.Metadata, CoreJsonContext.Payloads.IReadOnlyDictionaryStringString)),
        ("variables", JsonSerializer.Serialize(t.Variables, CoreJsonContext.Payloads.IReadOnlyDictionaryStringString)),
        ("state", JsonSerializer.Serialize(t.State, CoreJsonContext.Payloads.ChatThreadState)),
        ("active", t.IsActive), ("created", t.CreatedAt), ("updated", t.UpdatedAt), ("closed", t.ClosedAt),
        ("reason", t.ClosedReason), ("expires", t.WindowExpiresAt), ("sequence", t.LastSequence),
    ];

    private static async Task<ChatThread?> ReadThreadAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, Guid id, bool forUpdate, CancellationToken cancellationToken)
    {
        await using var query = Command(connection, $"SELECT {ThreadColumns} FROM threads WHERE id = @id{(forUpdate ? " FOR UPDATE" : "")}", tx, ("id", id));
        await using var r = await query.ExecuteReaderAsync(cancellationToken);
        return await r.ReadAsync(cancellationToken) ? MapThread(r) : null;
    }

    private static ChatThread MapThread(NpgsqlDataReader r) =>
        new()
        {
            Id = r.GetGuid(0),
            OrganizationId = r.GetGuid(1),
            AgentId = ReadNullableGuid(r, 2),
            AgentVersionId = ReadNullableGuid(r, 3),
            Channel = r.GetString(4),
            Metadata = JsonSerializer.Deserialize(r.GetString(5), CoreJsonContext.Payloads.DictionaryStringString)!,
            Variables = JsonSerializer.Deserialize(r.GetString(6), CoreJsonContext.Payloads.DictionaryStringString)!,
            State = JsonSerializer.Deserialize(r.GetString(7), CoreJsonContext.Payloads.ChatThreadState)!,
            IsActive = r.GetBoolean(8),
            CreatedAt = ReadTime(r, 9),
            UpdatedAt = ReadTime(r, 10),
            ClosedAt = ReadNullableTime(r, 11),
            ClosedReason = ReadNullableString(r, 12),
            WindowExpiresAt = ReadTime(r, 13),
            LastSequence = r.GetInt64(14),
        };
}
