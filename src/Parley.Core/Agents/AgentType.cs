namespace Parley.Core.Agents;

/// <summary>The channel an agent serves (seed: feather-create-web-thread.md, <c>agentDetails.agentType</c>). Web chat serves TEXT.</summary>
public enum AgentType
{
    /// <summary>A text (chat/SMS) agent.</summary>
    TEXT,
    /// <summary>A voice-call agent; not served by the web chat dialect.</summary>
    CALL,
}

/// <summary>How an agent version produces its replies (seed: <c>agentVersionDetails.mode</c>).</summary>
public enum AgentMode
{
    /// <summary>A declarative conversation graph; needs no model.</summary>
    FLOW,
    /// <summary>A language model with instructions and tools.</summary>
    PROMPT,
}
