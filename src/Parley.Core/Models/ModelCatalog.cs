using System.ClientModel;
using System.ClientModel.Primitives;
using System.Collections.Concurrent;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OllamaSharp;
using OpenAI;

namespace Parley.Core.Models;

/// <summary>
/// The configured models (<c>Parley:Models</c>), each as an <see cref="IChatClient"/> pipeline:
/// logging → usage metering → retries (Polly) → idle timeout → the provider's client. Built once per name.
/// </summary>
public sealed class ModelCatalog(IOptions<ModelCatalogOptions> options, TokenCounter tokens, ILoggerFactory loggerFactory) : IDisposable
{
    private readonly ConcurrentDictionary<string, IChatClient> _clients = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Names of the configured models.</summary>
    public IReadOnlyCollection<string> Names => options.Value.Models.Keys;

    /// <summary>The options of <paramref name="name"/>, or null.</summary>
    public ModelOptions? Find(string name) => options.Value.Models.GetValueOrDefault(name);

    /// <summary>The pipeline of model <paramref name="name"/>.</summary>
    /// <exception cref="ModelNotAvailableException">No such model, an unknown provider, or its API key variable is unset.</exception>
    public IChatClient Get(string name)
    {
        if (_clients.TryGetValue(name, out var client)) return client;
        var model = Find(name) ?? throw new ModelNotAvailableException(
            $"Model '{name}' is not configured (Parley:Models:{name}); configured: {(Names.Count == 0 ? "none" : string.Join(", ", Names))}.");
        return _clients.GetOrAdd(name, _ => Build(name, model));
    }

    private IChatClient Build(string name, ModelOptions model)
    {
        var inner = CreateProviderClient(name, model);
        var builder = new ChatClientBuilder(inner);
        // Microsoft.Extensions.AI's LoggingChatClient logs at Debug (calls) and Trace (every update), and is one more
        // async iterator on every token even when it logs nothing: it joins the pipeline only when its category logs
        // at Debug when the model is first used (log levels are read at start-up unless configuration reload is on).
        if (loggerFactory.CreateLogger<LoggingChatClient>().IsEnabled(LogLevel.Debug)) builder.UseLogging(loggerFactory);
        return builder
            .Use(c => new UsageMeteringChatClient(c, tokens))
            .Use(c => new ResilientChatClient(c, model.MaxRetries, TimeSpan.FromMilliseconds(model.RetryDelayMs)))
            .Use(c => new IdleTimeoutChatClient(c, TimeSpan.FromSeconds(model.TimeoutSeconds)))
            .Build();
    }

    private IChatClient CreateProviderClient(string name, ModelOptions model)
    {
        string? key = null;
        if (!string.IsNullOrEmpty(model.ApiKeyEnvironmentVariable))
        {
            key = Environment.GetEnvironmentVariable(model.ApiKeyEnvironmentVariable);
            if (string.IsNullOrEmpty(key))
                throw new ModelNotAvailableException($"Model '{name}': the environment variable {model.ApiKeyEnvironmentVariable} that should hold its API key is not set.");
        }
        switch (model.Provider.ToLowerInvariant())
        {
            case "openai":
                var openAiOptions = new OpenAIClientOptions
                {
                    // Retries and timeouts are the pipeline's (ResilientChatClient, IdleTimeoutChatClient), not the SDK's.
                    RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                    NetworkTimeout = Timeout.InfiniteTimeSpan,
                };
                if (!string.IsNullOrEmpty(model.Endpoint)) openAiOptions.Endpoint = new Uri(model.Endpoint);
                // OpenAI-compatible local servers accept any key; the SDK requires one.
                return new OpenAIClient(new ApiKeyCredential(key ?? "no-key"), openAiOptions)
                    .GetChatClient(model.Model ?? throw new ModelNotAvailableException($"Model '{name}': Model (the provider's model id) is required."))
                    .AsIChatClient();
            case "ollama":
                return new OllamaApiClient(new Uri(model.Endpoint ?? "http://localhost:11434"), model.Model ?? throw new ModelNotAvailableException($"Model '{name}': Model is required."));
            case "scripted":
                return new ScriptedChatClient(model);
            default:
                throw new ModelNotAvailableException($"Model '{name}': unknown provider '{model.Provider}' (use openai, ollama or scripted).");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var client in _clients.Values) client.Dispose();
    }
}
