using System.Globalization;
using System.Text.Json;
using Parley.Core;

namespace Parley.Server.AgentServer;

/// <summary>What a projected SSE event is, so each stream can select by its modes.</summary>
public enum ProjectedKind
{
    /// <summary><c>metadata</c>: a run was created (first event of every run).</summary>
    Metadata,
    /// <summary><c>values</c> after a run step (run started, reply completed): stream mode <c>values</c>.</summary>
    Values,
    /// <summary><c>values</c> after a change the run did not make (an input message, a rollback): thread stream mode <c>state_update</c> only.</summary>
    StateValues,
    /// <summary><c>messages</c>: <c>[chunk, metadata]</c>, stream mode <c>messages-tuple</c>.</summary>
    Messages,
    /// <summary><c>updates</c>: stream mode <c>updates</c>.</summary>
    Updates,
    /// <summary><c>custom</c>: tool calls, tool results, FLOW state; stream mode <c>custom</c>.</summary>
    Custom,
    /// <summary><c>error</c>: the run failed.</summary>
    Error,
    /// <summary><c>end</c>: a run ended (thread streams only).</summary>
    End,
}

/// <summary>Stream modes of runs and of the thread stream, parsed from bodies and query strings.</summary>
public static class StreamModes
{
    /// <summary>Run stream modes Parley implements.</summary>
    public static readonly string[] Implemented = ["values", "updates", "messages-tuple", "custom"];

    /// <summary>Run stream modes the reference accepts that Parley does not implement (a 422 names them).</summary>
    public static readonly string[] NotImplemented = ["messages", "events", "tasks", "checkpoints", "debug"];

    /// <summary>Thread stream modes (seed langgraph-join-thread-stream.md).</summary>
    public static readonly string[] ThreadModes = ["lifecycle", "run_modes", "state_update"];

    /// <summary>The kinds a run stream with <paramref name="modes"/> carries (<c>metadata</c> and <c>error</c> always).</summary>
    public static HashSet<ProjectedKind> ForRun(IEnumerable<string> modes)
    {
        var kinds = new HashSet<ProjectedKind> { ProjectedKind.Metadata, ProjectedKind.Error };
        foreach (var mode in modes)
        {
            switch (mode)
            {
                case "values": kinds.Add(ProjectedKind.Values); break;
                case "updates": kinds.Add(ProjectedKind.Updates); break;
                case "messages-tuple": kinds.Add(ProjectedKind.Messages); break;
                case "custom": kinds.Add(ProjectedKind.Custom); break;
            }
        }
        return kinds;
    }

    /// <summary>The kinds a thread stream with <paramref name="modes"/> carries.</summary>
    public static HashSet<ProjectedKind> ForThread(IEnumerable<string> modes)
    {
        var kinds = new HashSet<ProjectedKind>();
        foreach (var mode in modes)
        {
            switch (mode)
            {
                case "lifecycle":
                    kinds.UnionWith([ProjectedKind.Metadata, ProjectedKind.End]);
                    break;
                case "run_modes":
                    kinds.UnionWith([ProjectedKind.Metadata, ProjectedKind.Values, ProjectedKind.Messages, ProjectedKind.Updates,
                        ProjectedKind.Custom, ProjectedKind.Error, ProjectedKind.End]);
                    break;
                case "state_update":
                    kinds.UnionWith([ProjectedKind.Values, ProjectedKind.StateValues]);
                    break;
            }
        }
        return kinds;
    }

    /// <summary>
    /// Parses run stream modes from a body's <c>stream_mode</c> (a string or an array of strings); <paramref name="fallback"/>
    /// when absent or null.
    /// </summary>
    /// <exception cref="ParleyException">BadRequest (422) naming the mode that is unknown or not implemented.</exception>
    public static IReadOnlyList<string> ParseRunModes(JsonElement body, IReadOnlyList<string> fallback)
    {
        if (!body.TryGetProperty("stream_mode", out var value) || value.ValueKind == JsonValueKind.Null) return fallback;
        return CheckRunModes(ReadStrings(value, "stream_mode"));
    }

    /// <summary>Parses modes given in a query string: repeated values, a JSON array (as the SDK sends), or comma-separated.</summary>
    /// <exception cref="ParleyException">BadRequest (422) for a malformed value.</exception>
    public static IReadOnlyList<string> ParseQuery(IEnumerable<string?> values, string name)
    {
        var modes = new List<string>();
        foreach (var raw in values)
        {
            if (string.IsNullOrWhiteSpace(raw)) continue;
            var text = raw.Trim();
            if (text.StartsWith('['))
            {
                try
                {
                    using var document = JsonDocument.Parse(text);
                    modes.AddRange(ReadStrings(document.RootElement, name));
                }
                catch (JsonException)
                {
                    throw ParleyException.BadRequest($"{name}: not a JSON array of strings.");
                }
            }
            else
            {
                modes.AddRange(text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            }
        }
        return modes;
    }

    /// <summary>Checks run stream modes.</summary>
    /// <exception cref="ParleyException">BadRequest (422) naming an unknown or unimplemented mode.</exception>
    public static IReadOnlyList<string> CheckRunModes(IReadOnlyList<string> modes)
    {
        foreach (var mode in modes)
        {
            if (NotImplemented.Contains(mode))
                throw ParleyException.BadRequest($"stream_mode: '{mode}' is not implemented by Parley (implemented: {string.Join(", ", Implemented)}).");
            if (!Implemented.Contains(mode))
                throw ParleyException.BadRequest($"stream_mode: '{mode}' is not a stream mode (one of: {string.Join(", ", Implemented)}).");
        }
        return modes.Distinct().ToList();
    }

    /// <summary>Checks thread stream modes; an empty list means the default, <c>run_modes</c>.</summary>
    /// <exception cref="ParleyException">BadRequest (422) naming an unknown mode.</exception>
    public static IReadOnlyList<string> CheckThreadModes(IReadOnlyList<string> modes)
    {
        foreach (var mode in modes)
            if (!ThreadModes.Contains(mode))
                throw ParleyException.BadRequest($"stream_modes: '{mode}' is not a thread stream mode (one of: lifecycle, run_modes, state_update).");
        return modes.Count == 0 ? ["run_modes"] : modes.Distinct().ToList();
    }

    private static List<string> ReadStrings(JsonElement value, string name)
    {
        if (value.ValueKind == JsonValueKind.String) return [value.GetString()!];
        if (value.ValueKind != JsonValueKind.Array) throw ParleyException.BadRequest($"{name}: must be a string or an array of strings.");
        var modes = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw ParleyException.BadRequest($"{name}: must be a string or an array of strings.");
            modes.Add(item.GetString()!);
        }
        return modes;
    }
}

/// <summary>
/// An SSE id of the dialect: <c>{sequence}</c> for the first SSE event projected from a log event, <c>{sequence}-{k}</c>
/// for its k-th further one. Ordered by (sequence, k); a client resumes after exactly that event.
/// </summary>
/// <param name="Sequence">The thread log sequence.</param>
/// <param name="Index">The index among the SSE events projected from that log event.</param>
public readonly record struct StreamPosition(long Sequence, int Index)
{
    /// <summary>The id text.</summary>
    public override string ToString() => Index == 0
        ? Sequence.ToString(CultureInfo.InvariantCulture)
        : $"{Sequence.ToString(CultureInfo.InvariantCulture)}-{Index.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Parses an id this dialect wrote.</summary>
    public static bool TryParse(string text, out StreamPosition position)
    {
        position = default;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        var sequenceText = dash < 0 ? text : text[..dash];
        if (!long.TryParse(sequenceText, NumberStyles.None, CultureInfo.InvariantCulture, out var sequence)) return false;
        var index = 0;
        if (dash >= 0 && (!int.TryParse(text[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out index) || index < 1)) return false;
        position = new StreamPosition(sequence, index);
        return true;
    }
}
