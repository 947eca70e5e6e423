namespace Parley.Server.Streaming;

/// <summary>SSE options (<c>Parley:Streaming</c>).</summary>
public sealed class StreamingOptions
{
    /// <summary>Seconds of silence after which an open stream gets a <c>: ping</c> comment (default 15; fractions allowed).</summary>
    public double HeartbeatSeconds { get; set; } = 15;
}

/// <summary>Which events a web chat stream carries.</summary>
public enum ThreadStreamMode
{
    /// <summary>Only new outbound agent messages, as <c>event: message</c> (the seed's stream).</summary>
    Messages,
    /// <summary>Every thread event (<c>?events=all</c>), with its type as the SSE event name.</summary>
    All,
}
