using Parley.Core;

namespace Parley.Server.ChatStream;

/// <summary>The one place that shapes chat-stream errors (<see cref="ChatError"/>); statuses as the seed lists them.</summary>
public static class ChatStreamErrors
{
    /// <summary>Path prefix of the dialect.</summary>
    public const string PathPrefix = "/chat";

    /// <summary>True when the request belongs to this dialect.</summary>
    public static bool Owns(HttpContext context) =>
        context.Request.Path.StartsWithSegments(PathPrefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>The error code for a status.</summary>
    public static string CodeFor(int status) => status switch
    {
        400 => "bad_request",
        401 => "unauthorized",
        402 => "insufficient_balance",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        429 => "rate_limited",
        502 => "generation_failed",
        _ when status >= 500 => "internal_error",
        _ => "bad_request",
    };

    /// <summary>The status for a core failure. The dialect has no 403: another organization's session is "not found".</summary>
    public static int StatusFor(ParleyErrorKind kind) => kind switch
    {
        ParleyErrorKind.BadRequest => 400,
        ParleyErrorKind.NotFound or ParleyErrorKind.Forbidden => 404,
        ParleyErrorKind.PaymentRequired => 402,
        ParleyErrorKind.Conflict => 409,
        _ => 500,
    };

    /// <summary>The error as a result.</summary>
    public static IResult Result(int status, string message) =>
        TypedResults.Json(new ChatError(new ChatErrorBody(CodeFor(status), message)), ChatStreamJsonContext.Default.ChatError, statusCode: status);

    /// <summary>Writes the error to a response that has not started.</summary>
    public static Task WriteAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new ChatError(new ChatErrorBody(CodeFor(status), message)), ChatStreamJsonContext.Default.ChatError);
    }

    /// <summary>Maps <see cref="ParleyException"/>s thrown by handlers to the dialect's error.</summary>
    internal static async ValueTask<object?> Filter(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (ParleyException ex)
        {
            var status = StatusFor(ex.Kind);
            // Never confirm that another organization's session exists.
            return Result(status, ex.Kind == ParleyErrorKind.Forbidden ? "session_id: no such session." : ex.Message);
        }
    }
}
