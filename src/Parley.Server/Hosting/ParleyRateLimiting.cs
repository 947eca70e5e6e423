using System.Globalization;
using System.Security.Claims;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Parley.Server.Auth;
using Parley.Server.ChatStream;
using Parley.Server.WebChat;

namespace Parley.Server.Hosting;

/// <summary>Per-key limits (<c>Parley:RateLimits</c>); a key may carry its own requests-per-minute.</summary>
public sealed class RateLimitOptions
{
    /// <summary>Requests per minute per API key, refilled evenly (default 600).</summary>
    public int RequestsPerMinute { get; set; } = 600;

    /// <summary>Requests a key may make at once before the refill rate applies (token bucket size; default 100).</summary>
    public int Burst { get; set; } = 100;

    /// <summary>Streams one key may hold open at once (web chat streams and /chat/stream; default 100).</summary>
    public int MaxConcurrentStreams { get; set; } = 100;
}

/// <summary>
/// Rate limits per API key with ASP.NET Core's rate limiter: a token bucket for requests and a concurrency limit for
/// open streams. A refused request gets 429 with <c>Retry-After</c> (seconds) and the error shape of its dialect.
/// Requests without a key are not limited here (they are refused with 401 anyway). Requests with a publishable key
/// (the widget) are limited per key and client IP address: all visitors of a site share the key, not the limits.
/// </summary>
public static class ParleyRateLimiting
{
    /// <summary>Registers the limiter and its options.</summary>
    public static IServiceCollection AddParleyRateLimiting(this IServiceCollection services)
    {
        services.AddOptions<RateLimitOptions>().BindConfiguration("Parley:RateLimits")
            .Validate(o => o.RequestsPerMinute > 0 && o.Burst > 0 && o.MaxConcurrentStreams > 0, "Parley:RateLimits values must be positive.")
            .ValidateOnStart();
        services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.OnRejected = OnRejectedAsync;
        });
        // The limits are read once, when the limiter is built, rather than resolved from the request's services on
        // every request (as the partition keys, which are values rather than strings built per request: both showed in
        // perf profiles of the ingest benchmark).
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<RateLimitOptions>>((options, limits) =>
            options.GlobalLimiter = PartitionedRateLimiter.CreateChained(RequestsPerKey(limits.Value), StreamsPerKey(limits.Value)));
        return services;
    }

    // A key's token bucket: its id and the rate it was created with (a key whose own limit changes gets a new bucket).
    private readonly record struct RequestPartition(string KeyId, int PerMinute, int Burst);

    private readonly record struct StreamPartition(string KeyId, int Limit);

    private static PartitionedRateLimiter<HttpContext> RequestsPerKey(RateLimitOptions options) => PartitionedRateLimiter.Create<HttpContext, RequestPartition>(context =>
    {
        if (PartitionOf(context) is not { } keyId) return RateLimitPartition.GetNoLimiter(default(RequestPartition));
        var perMinute = (context.User as ApiKeyPrincipal)?.RequestsPerMinute is { } own && own > 0 ? own : options.RequestsPerMinute;
        var burst = Math.Min(options.Burst, perMinute);
        return RateLimitPartition.GetTokenBucketLimiter(new RequestPartition(keyId, perMinute, burst), partition => new TokenBucketRateLimiterOptions
        {
            TokenLimit = partition.Burst,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = TimeSpan.FromMinutes(1) / partition.PerMinute,
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    });

    private static PartitionedRateLimiter<HttpContext> StreamsPerKey(RateLimitOptions options) => PartitionedRateLimiter.Create<HttpContext, StreamPartition>(context =>
    {
        if (!IsStream(context) || PartitionOf(context) is not { } keyId) return RateLimitPartition.GetNoLimiter(default(StreamPartition));
        return RateLimitPartition.GetConcurrencyLimiter(new StreamPartition(keyId, options.MaxConcurrentStreams),
            partition => new ConcurrencyLimiterOptions { PermitLimit = partition.Limit, QueueLimit = 0 });
    });

    /// <summary>The secret key's id, or the publishable key's id with the client's IP address, or null when anonymous.</summary>
    private static string? PartitionOf(HttpContext context) => context.User is ApiKeyPrincipal key ? key.ApiKeyId
        : context.User.FindFirstValue(Widget.WidgetClaims.PublishableKeyId) is { } publishable ? $"{publishable}/{context.Connection.RemoteIpAddress}" : null;

    private static bool IsStream(HttpContext context) => context.Request.Path.Value?.EndsWith("/stream", StringComparison.OrdinalIgnoreCase) == true;

    private static async ValueTask OnRejectedAsync(OnRejectedContext rejected, CancellationToken cancellationToken)
    {
        var context = rejected.HttpContext;
        string message;
        if (rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter))
        {
            var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
            message = $"Rate limit exceeded for this API key; retry after {seconds} s.";
        }
        else
        {
            context.Response.Headers.RetryAfter = "1";
            message = "Too many open streams for this API key; close one and retry.";
        }
        if (AgentServer.AgentServerErrors.Owns(context)) await AgentServer.AgentServerErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, message);
        else if (ChatStreamErrors.Owns(context)) await ChatStreamErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, message);
        else await WebChatErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, message);
    }
}
