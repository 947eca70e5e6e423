using System.ClientModel;
using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Polly;
using Polly.Retry;

namespace Parley.Core.Models;

/// <summary>
/// Retries transient failures (connection errors, 408, 429, 5xx, a timeout before the first update) with exponential
/// backoff, using Polly — but only until the model has streamed something: a retry after the first update would
/// repeat text the client already saw.
/// </summary>
public sealed class ResilientChatClient : DelegatingChatClient
{
    private readonly ResiliencePipeline _pipeline;

    /// <summary>Wraps <paramref name="innerClient"/> with <paramref name="maxRetries"/> retries, the first after <paramref name="firstDelay"/>.</summary>
    public ResilientChatClient(IChatClient innerClient, int maxRetries, TimeSpan firstDelay) : base(innerClient)
    {
        var builder = new ResiliencePipelineBuilder();
        if (maxRetries > 0)
            builder.AddRetry(new RetryStrategyOptions
            {
                MaxRetryAttempts = maxRetries,
                Delay = firstDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldHandle = new PredicateBuilder().Handle<Exception>(IsTransient),
            });
        _pipeline = builder.Build();
    }

    /// <summary>True for failures worth another try.</summary>
    public static bool IsTransient(Exception exception) => exception switch
    {
        HttpRequestException { StatusCode: null } => true,
        HttpRequestException { StatusCode: { } status } => IsTransient(status),
        ClientResultException { Status: var status } => status == 0 || IsTransient((HttpStatusCode)status),
        TimeoutException => true,
        _ => false,
    };

    private static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

    /// <inheritdoc />
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        _pipeline.ExecuteAsync(ct => new ValueTask<ChatResponse>(base.GetResponseAsync(messages, options, ct)), cancellationToken).AsTask();

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? messages.ToList();
        // Retry the start of the stream: open it and read the first update.
        var (enumerator, first) = await _pipeline.ExecuteAsync(async ct =>
        {
            var e = base.GetStreamingResponseAsync(list, options, ct).GetAsyncEnumerator(ct);
            try
            {
                return (e, await e.MoveNextAsync() ? e.Current : null);
            }
            catch
            {
                await e.DisposeAsync();
                throw;
            }
        }, cancellationToken);

        await using (enumerator)
        {
            if (first is null) yield break;
            yield return first;
            while (await enumerator.MoveNextAsync())
                yield return enumerator.Current;
        }
    }
}
