using System.Text.Json;
using System.Text.Json.Serialization;
using Parley.Core.Agents.Flow;

namespace Parley.Core.Agents;

/// <summary>
/// The declarative content of an agent version, as written in an agent file (JSON or YAML, see docs/agents.md).
/// Field names follow the web chat seed where it has them (<c>smsMaxTokens</c>, <c>smsTemperature</c>, <c>discardInboundSms</c>).
/// </summary>
public sealed record AgentDefinition
{
    /// <summary>Stable agent id (UUID). Files should set it so ids survive a fresh database; otherwise one is derived from the file name.</summary>
    public Guid? Id { get; init; }

    /// <summary>Agent name (required, 1–200 characters).</summary>
    public string Name { get; init; } = "";

    /// <summary>Optional description.</summary>
    public string? Description { get; init; }

    /// <summary>TEXT (default) or CALL.</summary>
    public AgentType AgentType { get; init; } = AgentType.TEXT;

    /// <summary>Name of this version; defaults to the agent name.</summary>
    public string? VersionName { get; init; }

    /// <summary>FLOW or PROMPT.</summary>
    public AgentMode Mode { get; init; } = AgentMode.FLOW;

    /// <summary>PROMPT instructions, with <c>{{variable}}</c> placeholders.</summary>
    public string? Instructions { get; init; }

    /// <summary>Name of a configured model (<c>Parley:Models:&lt;name&gt;</c>), for PROMPT versions.</summary>
    public string? Model { get; init; }

    /// <summary>Maximum output tokens per reply, or null for the model's default.</summary>
    public int? SmsMaxTokens { get; init; }

    /// <summary>Sampling temperature (0–2), or null for the model's default.</summary>
    public double? SmsTemperature { get; init; }

    /// <summary>When true, inbound messages are stored but start no reply run.</summary>
    public bool DiscardInboundSms { get; init; }

    /// <summary>Inactivity window in seconds (default 86,400 = 24 h). Every inbound message restarts it; when it runs out the thread is closed.</summary>
    public int WindowSeconds { get; init; } = 86_400;

    /// <summary>Tools the model may call (PROMPT versions and FLOW <c>prompt</c> nodes).</summary>
    public List<Tools.ToolDefinition>? Tools { get; init; }

    /// <summary>The conversation graph of a FLOW version.</summary>
    public FlowGraph? Flow { get; init; }

    /// <summary>Serializer options for agent files: camelCase, enums as strings, comments and trailing commas allowed.</summary>
    public static JsonSerializerOptions FileJsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
