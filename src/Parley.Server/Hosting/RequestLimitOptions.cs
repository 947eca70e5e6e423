namespace Parley.Server.Hosting;

/// <summary>Request size limits (<c>Parley:Limits</c>). A request over a limit is refused with 400 and changes nothing.</summary>
public sealed class RequestLimitOptions
{
    /// <summary>Largest JSON request body, in bytes (default 65,536 = 64 KiB).</summary>
    public int MaxRequestBodyBytes { get; set; } = 64 * 1024;

    /// <summary>Longest message text, in characters (UTF-16 code units; default 8,000).</summary>
    public int MaxMessageLength { get; set; } = 8_000;
}
