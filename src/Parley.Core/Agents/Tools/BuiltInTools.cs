using System.Text.Json;

namespace Parley.Core.Agents.Tools;

/// <summary>The built-in tools and their argument schemas.</summary>
public static class BuiltInTools
{
    /// <summary>Ends the conversation after the reply: the thread is closed (<c>closedReason</c> = the reason, default <c>ended_by_agent</c>).</summary>
    public const string EndConversation = "end_conversation";

    /// <summary>Sets a thread variable: arguments <c>{name, value}</c>.</summary>
    public const string SetVariable = "set_variable";

    /// <summary>Hands the thread to a human after the reply: later inbound messages start no run.</summary>
    public const string HandOff = "hand_off";

    /// <summary>True for a built-in type.</summary>
    public static bool IsBuiltIn(string type) => type is EndConversation or SetVariable or HandOff;

    /// <summary>The description shown to the model.</summary>
    public static string Describe(string type) => type switch
    {
        EndConversation => "End the conversation when the user's request is complete or they say goodbye. Say goodbye in your reply too.",
        SetVariable => "Remember a fact about the user or the conversation as a named variable (for example email or order number).",
        HandOff => "Hand the conversation to a human agent when you cannot help or the user asks for a person.",
        _ => "",
    };

    /// <summary>The JSON Schema of the built-in's arguments.</summary>
    public static JsonElement Schema(string type) => JsonDocument.Parse(type switch
    {
        SetVariable => """{"type":"object","properties":{"name":{"type":"string","pattern":"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},"value":{"type":"string","maxLength":2000}},"required":["name","value"],"additionalProperties":false}""",
        _ => """{"type":"object","properties":{"reason":{"type":"string","maxLength":200}},"additionalProperties":false}""",
    }).RootElement.Clone();
}
