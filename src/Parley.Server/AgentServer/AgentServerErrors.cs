using Parley.Core;

namespace Parley.Server.AgentServer;

/// <summary>
/// The one place that shapes agent-server errors: <c>{"detail": "..."}</c> (seed langgraph-join-thread-stream.md,
/// <c>ErrorResponse</c>; FastAPI style). Invalid input is 422 (the seed's validation status), an unknown — or another
/// organization's — resource is 404, a busy thread under <c>multitask_strategy: reject</c> is 422 with the reference
/// server's text, a run that cannot be cancelled any more is 409.
/// </summary>
public static class AgentServerErrors
{
    /// <summary>The reference server's text for a busy thread (capture 53).</summary>
    public const string BusyThread = "Thread is already running a task. Wait for it to finish or choose a different multitask strategy.";

    private static readonly string[] Prefixes = ["/assistants", "/threads", "/runs", "/info", "/ok"];

    /// <summary>True when the request belongs to this dialect (its root paths).</summary>
    public static bool Owns(HttpContext context) =>
        Prefixes.Any(prefix => context.Request.Path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase));

    /// <summary>The status for a core failure. Another organization's resource is "not found", never "forbidden".</summary>
    public static int StatusFor(ParleyErrorKind kind) => kind switch
    {
        ParleyErrorKind.BadRequest => StatusCodes.Status422UnprocessableEntity,
        ParleyErrorKind.NotFound or ParleyErrorKind.Forbidden => StatusCodes.Status404NotFound,
        ParleyErrorKind.PaymentRequired => StatusCodes.Status402PaymentRequired,
        ParleyErrorKind.Conflict => StatusCodes.Status409Conflict,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>The error as a result.</summary>
    public static IResult Result(int status, string detail) =>
        TypedResults.Json(new AgentServerError(detail), AgentServerJsonContext.Wire.AgentServerError, statusCode: status);

    /// <summary>Writes the error to a response that has not started.</summary>
    public static Task WriteAsync(HttpContext context, int status, string detail)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new AgentServerError(detail), AgentServerJsonContext.Wire.AgentServerError);
    }

    /// <summary>Maps <see cref="ParleyException"/>s thrown by handlers to <c>{detail}</c>.</summary>
    internal static async ValueTask<object?> Filter(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (ParleyException ex)
        {
            // Never confirm that another organization's resource exists.
            return Result(StatusFor(ex.Kind), ex.Kind == ParleyErrorKind.Forbidden ? "Not found." : ex.Message);
        }
    }

    /// <summary>Declares <c>{detail}</c> for the dialect's error statuses in OpenAPI.</summary>
    internal static RouteGroupBuilder ProducesAgentServerErrors(this RouteGroupBuilder group)
    {
        foreach (var status in new[] { 401, 404, 422, 500 })
            group.WithMetadata(new ProducesResponseTypeMetadata(status, typeof(AgentServerError), ["application/json"]));
        return group;
    }

    /// <summary>Gives bodiless error statuses (unknown route, wrong method) on the dialect's paths the <c>{detail}</c> body.</summary>
    public static Task WriteStatusCodePageAsync(HttpContext context)
    {
        var status = context.Response.StatusCode;
        var detail = status switch
        {
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Request failed.",
        };
        return WriteAsync(context, status, detail);
    }
}
