using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Parley.Core;

namespace Parley.Server.WebChat;

/// <summary>
/// The web chat error envelope, exactly as the seeds define it (feather-*.md, responses 400/403/404/500):
/// <c>{"status": 400, "message": "...", "code": "BAD_REQUEST", "success": false}</c>.
/// </summary>
/// <param name="Status">The HTTP status code.</param>
/// <param name="Message">What went wrong, naming the field; never a stack trace.</param>
/// <param name="Code">BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT or INTERNAL_SERVER_ERROR.</param>
/// <param name="Success">Always false.</param>
public sealed record WebChatError(int Status, string Message, string Code, bool Success = false);

/// <summary>The one place that shapes web chat errors.</summary>
public static class WebChatErrors
{
    /// <summary>The envelope's <c>code</c> for a status.</summary>
    public static string CodeFor(int status) => status switch
    {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        402 => "PAYMENT_REQUIRED",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        429 => "TOO_MANY_REQUESTS",
        413 => "BAD_REQUEST",
        415 => "BAD_REQUEST",
        _ when status >= 500 => "INTERNAL_SERVER_ERROR",
        _ => "BAD_REQUEST",
    };

    /// <summary>The status for a core failure.</summary>
    public static int StatusFor(ParleyErrorKind kind) => kind switch
    {
        ParleyErrorKind.BadRequest => 400,
        ParleyErrorKind.NotFound => 404,
        ParleyErrorKind.Forbidden => 403,
        ParleyErrorKind.Conflict => 409,
        ParleyErrorKind.PaymentRequired => 402,
        _ => 500,
    };

    /// <summary>The envelope as a typed result.</summary>
    public static IResult Result(int status, string message) =>
        TypedResults.Json(new WebChatError(status, message, CodeFor(status)), WebChatJsonContext.Default.WebChatError, statusCode: status);

    /// <summary>The envelope of a core failure.</summary>
    public static IResult Result(ParleyException exception) => Result(StatusFor(exception.Kind), exception.Message);

    /// <summary>Writes the envelope to a response that has not started.</summary>
    public static Task WriteAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        return context.Response.WriteAsJsonAsync(new WebChatError(status, message, CodeFor(status)), WebChatJsonContext.Default.WebChatError);
    }

    /// <summary>Maps <see cref="ParleyException"/>s thrown by handlers to the envelope.</summary>
    internal static async ValueTask<object?> Filter(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (ParleyException ex)
        {
            return WebChatErrors.Result(ex);
        }
    }

    /// <summary>Declares the envelope for 400, 401, 403, 404 and 500 in OpenAPI.</summary>
    internal static RouteGroupBuilder ProducesWebChatErrors(this RouteGroupBuilder group)
    {
        foreach (var status in new[] { 400, 401, 403, 404, 500 })
            group.WithMetadata(new ProducesResponseTypeMetadata(status, typeof(WebChatError), ["application/json"]));
        return group;
    }

    /// <summary>Gives bodiless error statuses (unknown route, wrong method) the envelope.</summary>
    public static Task WriteStatusCodePageAsync(StatusCodeContext context)
    {
        var status = context.HttpContext.Response.StatusCode;
        var message = status switch
        {
            404 => $"No endpoint {context.HttpContext.Request.Path}.",
            405 => $"Method {context.HttpContext.Request.Method} is not allowed on {context.HttpContext.Request.Path}.",
            _ => "Request failed.",
        };
        return WriteAsync(context.HttpContext, status, message);
    }
}

/// <summary>
/// Turns exceptions into the web chat envelope: a <see cref="ParleyException"/> into its status, a malformed request
/// (<see cref="BadHttpRequestException"/>) into 400, anything else into 500 with no detail (it is logged).
/// </summary>
public sealed partial class ParleyExceptionHandler(ILogger<ParleyExceptionHandler> logger) : IExceptionHandler
{
    /// <inheritdoc />
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (httpContext.Response.HasStarted) return false;
        if (AgentServer.AgentServerErrors.Owns(httpContext))
        {
            // The agent-server dialect's paths answer in its {detail} shape.
            var (status, detail) = exception switch
            {
                ParleyException p => (AgentServer.AgentServerErrors.StatusFor(p.Kind), p.Message),
                BadHttpRequestException bad => (422, bad.Message),
                JsonException => (422, "The body is not valid JSON."),
                _ => (500, "Internal server error."),
            };
            if (status == 500) Log.Unhandled(logger, exception, httpContext.Request.Method, httpContext.Request.Path);
            await AgentServer.AgentServerErrors.WriteAsync(httpContext, status, detail);
            return true;
        }
        switch (exception)
        {
            case ParleyException p:
                await WebChatErrors.WriteAsync(httpContext, WebChatErrors.StatusFor(p.Kind), p.Message);
                break;
            case BadHttpRequestException bad:
                await WebChatErrors.WriteAsync(httpContext, 400, bad.Message);
                break;
            case JsonException:
                await WebChatErrors.WriteAsync(httpContext, 400, "The body is not valid JSON.");
                break;
            default:
                Log.Unhandled(logger, exception, httpContext.Request.Method, httpContext.Request.Path);
                await WebChatErrors.WriteAsync(httpContext, 500, "Internal server error.");
                break;
        }
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Unhandled error on {Method} {Path}")]
        public static partial void Unhandled(ILogger logger, Exception exception, string method, string path);
    }
}
