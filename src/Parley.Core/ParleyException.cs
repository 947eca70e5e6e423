namespace Parley.Core;

/// <summary>The kinds of failure a request can meet; each dialect maps them to its status codes and error shape.</summary>
public enum ParleyErrorKind
{
    /// <summary>Invalid input (web chat: 400 BAD_REQUEST).</summary>
    BadRequest,
    /// <summary>No such resource (404).</summary>
    NotFound,
    /// <summary>The resource belongs to another organization (web chat: 403 FORBIDDEN).</summary>
    Forbidden,
    /// <summary>The request conflicts with the resource's state (409).</summary>
    Conflict,
    /// <summary>The organization's token budget is spent (402).</summary>
    PaymentRequired,
}

/// <summary>
/// A failure that a client caused and should see, with a message safe to show (it names the offending field or
/// resource and never reveals another organization's data). Thrown by core services; shaped by each dialect's
/// error mapper.
/// </summary>
public sealed class ParleyException(ParleyErrorKind kind, string message) : Exception(message)
{
    /// <summary>What went wrong.</summary>
    public ParleyErrorKind Kind { get; } = kind;

    /// <summary>A 400 naming the field.</summary>
    public static ParleyException BadRequest(string message) => new(ParleyErrorKind.BadRequest, message);

    /// <summary>A 404.</summary>
    public static ParleyException NotFound(string message) => new(ParleyErrorKind.NotFound, message);

    /// <summary>A 403.</summary>
    public static ParleyException Forbidden(string message) => new(ParleyErrorKind.Forbidden, message);
}
