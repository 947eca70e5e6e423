using System.Globalization;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Parley.Core;
using Parley.Core.Storage;
using Parley.Server.Auth;

namespace Parley.Server.WebChat;

/// <summary>Token usage of the organization, as recorded on its runs (every dialect's runs count).</summary>
/// <param name="OrganizationId">The organization.</param>
/// <param name="From">Start of the period (inclusive, ISO 8601).</param>
/// <param name="To">End of the period (exclusive, ISO 8601).</param>
/// <param name="Runs">Runs that called a model.</param>
/// <param name="InputTokens">Prompt tokens.</param>
/// <param name="OutputTokens">Generated tokens.</param>
/// <param name="TotalTokens">Both.</param>
public sealed record UsageReport(string OrganizationId, string From, string To, long Runs, long InputTokens, long OutputTokens, long TotalTokens);

/// <summary><c>GET /api/v1/usage</c>: the organization's token usage.</summary>
public static class WebChatUsageApi
{
    /// <summary>Maps the endpoint.</summary>
    public static RouteGroupBuilder MapWebChatUsage(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/api/v1/usage").WithTags("Usage").RequireAuthorization()
            .AddEndpointFilter(WebChatErrors.Filter)
            .ProducesWebChatErrors();
        group.MapGet("/", GetUsageAsync).WithName("GetUsage")
            .WithSummary("Token usage of the organization's runs created in [from, to) (ISO 8601; default: all time)");
        return group;
    }

    private static async Task<Ok<UsageReport>> GetUsageAsync(string? from, string? to, ClaimsPrincipal user, IThreadStore threads, TimeProvider time, CancellationToken cancellationToken)
    {
        var start = Parse(from, "from") ?? DateTimeOffset.UnixEpoch;
        var end = Parse(to, "to") ?? time.GetUtcNow().AddDays(1);
        if (end <= start) throw ParleyException.BadRequest("to: must be after from.");
        var organizationId = user.GetOrganizationId();
        var usage = await threads.GetOrganizationUsageAsync(organizationId, start, end, cancellationToken);
        return TypedResults.Ok(new UsageReport(organizationId.ToString("D"), UtcTimestampJsonConverter.ToText(start), UtcTimestampJsonConverter.ToText(end), usage.Runs,
            usage.Usage.InputTokens, usage.Usage.OutputTokens, usage.Usage.TotalTokens));
    }

    private static DateTimeOffset? Parse(string? value, string name) =>
        value is null ? null
        : DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t.ToUniversalTime()
        : throw ParleyException.BadRequest($"{name}: must be an ISO 8601 date or time.");

}
