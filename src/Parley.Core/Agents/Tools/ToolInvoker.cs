using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NJsonSchema;

namespace Parley.Core.Agents.Tools;

/// <summary>The outcome of one tool call.</summary>
/// <param name="ResultJson">What the model is told (on error: <c>{"error": "..."}</c>).</param>
/// <param name="IsError">True when the call failed or was refused.</param>
/// <param name="Effects">Thread changes the call causes (variables now; end or hand-off after the reply).</param>
public sealed record ToolOutcome(string ResultJson, bool IsError, IReadOnlyList<AgentUpdate> Effects);

/// <summary>
/// Runs the tool calls a model makes: validates the arguments against the tool's JSON Schema (NJsonSchema) — invalid
/// arguments go back to the model as an error and never reach the webhook — then calls the webhook (signed with
/// HMAC-SHA256 over <c>timestamp.body</c>, with a timeout) or applies the built-in.
/// </summary>
public sealed class ToolInvoker(IHttpClientFactory httpClientFactory, TimeProvider time)
{
    /// <summary>Name of the <see cref="HttpClient"/> used for webhook tools.</summary>
    public const string WebhookClientName = "parley-tool-webhooks";

    /// <summary>Webhook timeout when a tool sets none, in milliseconds.</summary>
    public const int DefaultTimeoutMs = 10_000;

    /// <summary>Header with the request's Unix time in seconds.</summary>
    public const string TimestampHeader = "X-Parley-Timestamp";

    /// <summary>Header with <c>sha256=</c> and the lower-case hex HMAC-SHA256 of <c>timestamp + "." + body</c>.</summary>
    public const string SignatureHeader = "X-Parley-Signature";

    /// <summary>Calls <paramref name="tool"/> with <paramref name="argumentsJson"/> for a run of <paramref name="threadId"/>.</summary>
    public async Task<ToolOutcome> InvokeAsync(ToolDefinition tool, string argumentsJson, Guid threadId, Guid runId, CancellationToken cancellationToken)
    {
        var schema = tool.Type == "webhook" ? tool.Parameters : BuiltInTools.Schema(tool.Type);
        if (await ValidateAsync(schema, argumentsJson) is { } invalid)
            return Error($"invalid arguments: {invalid}");

        var arguments = JsonNode.Parse(argumentsJson) as JsonObject ?? [];
        switch (tool.Type)
        {
            case BuiltInTools.SetVariable:
                var name = arguments["name"]!.GetValue<string>();
                var value = arguments["value"]!.GetValue<string>();
                return new ToolOutcome("""{"ok":true}""", false, [new VariablesUpdate(new Dictionary<string, string> { [name] = value })]);
            case BuiltInTools.EndConversation:
                return new ToolOutcome("""{"ok":true,"note":"The conversation ends after your reply."}""", false,
                    [new CloseThreadUpdate(arguments["reason"]?.GetValue<string>() is { Length: > 0 } reason ? reason : "ended_by_agent")]);
            case BuiltInTools.HandOff:
                return new ToolOutcome("""{"ok":true,"note":"A human takes over after your reply."}""", false,
                    [new HandOffUpdate(arguments["reason"]?.GetValue<string>())]);
            default:
                return await CallWebhookAsync(tool, arguments, threadId, runId, cancellationToken);
        }
    }

    /// <summary>The signature of <paramref name="body"/> sent at <paramref name="timestamp"/>: <c>sha256=</c> + hex HMAC-SHA256 of <c>"{timestamp}.{body}"</c>.</summary>
    public static string Sign(string secret, string timestamp, string body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp}.{body}")));

    private async Task<ToolOutcome> CallWebhookAsync(ToolDefinition tool, JsonObject arguments, Guid threadId, Guid runId, CancellationToken cancellationToken)
    {
        var secret = tool.SecretEnvironmentVariable is { Length: > 0 } variable ? Environment.GetEnvironmentVariable(variable) : null;
        if (tool.SecretEnvironmentVariable is { Length: > 0 } && string.IsNullOrEmpty(secret))
            return Error($"the tool's secret ({tool.SecretEnvironmentVariable}) is not set on the server");

        var body = new JsonObject
        {
            ["tool"] = tool.EffectiveName,
            ["arguments"] = arguments.DeepClone(),
            ["threadId"] = threadId.ToString("D"),
            ["runId"] = runId.ToString("D"),
        }.ToJsonString();
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        using var request = new HttpRequestMessage(HttpMethod.Post, tool.Url) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add(TimestampHeader, timestamp);
        if (secret is not null) request.Headers.Add(SignatureHeader, Sign(secret, timestamp, body));

        var timeoutMs = tool.TimeoutMs ?? DefaultTimeoutMs;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(timeoutMs);
        try
        {
            using var response = await httpClientFactory.CreateClient(WebhookClientName).SendAsync(request, timeout.Token);
            var text = await response.Content.ReadAsStringAsync(timeout.Token);
            if (!response.IsSuccessStatusCode) return Error($"the webhook answered HTTP {(int)response.StatusCode}");
            try
            {
                return new ToolOutcome(JsonDocument.Parse(string.IsNullOrWhiteSpace(text) ? "null" : text).RootElement.GetRawText(), false, []);
            }
            catch (JsonException)
            {
                return new ToolOutcome(JsonSerializer.Serialize(text, CoreJsonContext.Payloads.String), false, []);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Error($"the webhook did not answer within {timeoutMs} ms");
        }
        catch (HttpRequestException ex)
        {
            return Error($"the webhook could not be reached ({ex.Message})");
        }
    }

    private static async Task<string?> ValidateAsync(JsonElement? schema, string argumentsJson)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(string.IsNullOrWhiteSpace(argumentsJson) ? "{}" : argumentsJson);
        }
        catch (JsonException)
        {
            return "the arguments are not valid JSON";
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) return "the arguments must be a JSON object";
            if (schema is not { } s) return null;
            var compiled = await JsonSchema.FromJsonAsync(s.GetRawText());
            var errors = compiled.Validate(document.RootElement.GetRawText());
            return errors.Count == 0 ? null : string.Join("; ", errors.Select(e => $"{(string.IsNullOrEmpty(e.Path) ? "#" : e.Path)}: {e.Kind}"));
        }
    }

    private static ToolOutcome Error(string message) =>
        new(new JsonObject { ["error"] = message }.ToJsonString(), true, []);
}
