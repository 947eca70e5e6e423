using System.Text.Json;
using System.Text.Json.Serialization;
using Parley.Core.Agents.Flow;
using Parley.Core.Runs;
using Parley.Core.Threads;

namespace Parley.Core;

/// <summary>Source-generated JSON for event payloads and persisted state: camelCase, enums as their names.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, UseStringEnumConverter = true, Converters = [typeof(UtcTimestampJsonConverter)])]
[JsonSerializable(typeof(ThreadMessage))]
[JsonSerializable(typeof(Run))]
[JsonSerializable(typeof(Parley.Core.Models.TokenUsage))]
[JsonSerializable(typeof(ChatThreadState))]
[JsonSerializable(typeof(FlowState))]
[JsonSerializable(typeof(StateUpdatedData))]
[JsonSerializable(typeof(ThreadClosedData))]
[JsonSerializable(typeof(MessageDeltaData))]
[JsonSerializable(typeof(ToolCallData))]
[JsonSerializable(typeof(ToolResultData))]
[JsonSerializable(typeof(ThreadCreatedData))]
[JsonSerializable(typeof(RunCancelRequestedData))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(IReadOnlyDictionary<string, string>))]
[JsonSerializable(typeof(List<string>))]
[JsonSerializable(typeof(string))]
public sealed partial class CoreJsonContext : JsonSerializerContext
{
    /// <summary>
    /// The context used for payloads: as <see cref="JsonSerializerContext"/>'s default, but without escaping of
    /// HTML-sensitive characters (an apostrophe stays <c>'</c>, not <c>\u0027</c>). Safe: payloads are JSON bodies and
    /// SSE data, never inlined into HTML.
    /// </summary>
    public static CoreJsonContext Payloads { get; } = new(new JsonSerializerOptions(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(), new UtcTimestampJsonConverter() },
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
