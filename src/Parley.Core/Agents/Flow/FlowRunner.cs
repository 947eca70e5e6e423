using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Parley.Core.Agents.Flow;

/// <summary>
/// Executes one turn of a FLOW graph (docs/agents.md): the inbound message answers the pending <c>ask</c> or starts
/// the flow, then nodes run until the flow asks, ends, hands off, or stops after a <c>say</c> with no <c>next</c>.
/// Yields <see cref="AgentUpdate"/>s as it goes; the caller persists them. Never writes anything itself.
/// </summary>
public sealed class FlowRunner(IHttpClientFactory httpClientFactory)
{
    /// <summary>Name of the <see cref="HttpClient"/> used for webhook nodes.</summary>
    public const string WebhookClientName = "parley-flow-webhooks";

    /// <summary>Nodes one turn may visit; more means a loop without an <c>ask</c>.</summary>
    public const int MaxStepsPerTurn = 100;

    /// <summary>Webhook timeout when a node sets none, in milliseconds.</summary>
    public const int DefaultWebhookTimeoutMs = 10_000;

    /// <summary>Runs one turn.</summary>
    /// <exception cref="FlowExecutionException">The flow cannot go on; the updates yielded before it stand.</exception>
    public async IAsyncEnumerable<AgentUpdate> RunTurnAsync(FlowGraph graph, FlowTurn turn, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var state = turn.State;
        if (state.Ended) yield break;
        var variables = new Dictionary<string, string>(turn.Variables);
        string? nodeId;

        if (state.Awaiting && state.Node is { } askId && graph.Nodes.TryGetValue(askId, out var ask) && ask.Type == "ask")
        {
            if (FlowAnswerValidator.TryValidate(ask.Validate, turn.InboundText, out var answer))
            {
                variables[ask.Variable!] = answer;
                yield return new VariablesUpdate(new Dictionary<string, string> { [ask.Variable!] = answer });
                nodeId = ask.Next;
            }
            else if (ask.MaxRetries is { } maxRetries && state.Retries + 1 > maxRetries && ask.OnInvalid is { } onInvalid)
            {
                nodeId = onInvalid;
            }
            else
            {
                var retry = ask.RetryText ?? FlowAnswerValidator.DefaultRetryText(ask.Validate);
                yield return new OutboundMessageUpdate(FlowTemplate.Render(retry, variables), QuickReplies(ask));
                yield return new FlowStateUpdate(state with { Retries = state.Retries + 1 });
                yield break;
            }
        }
        else
        {
            nodeId = state.Node ?? graph.Start;
        }

        var steps = 0;
        while (nodeId is not null)
        {
            if (++steps > MaxStepsPerTurn)
                throw new FlowExecutionException($"The flow visited {MaxStepsPerTurn} nodes in one turn (last: '{nodeId}'); is there a loop without an ask?");
            if (!graph.Nodes.TryGetValue(nodeId, out var node))
                throw new FlowExecutionException($"The flow has no node '{nodeId}'.");

            switch (node.Type)
            {
                case "say":
                    yield return new OutboundMessageUpdate(FlowTemplate.Render(node.Text ?? "", variables), []);
                    nodeId = node.Next;
                    break;

                case "ask":
                    yield return new OutboundMessageUpdate(FlowTemplate.Render(node.Text ?? "", variables), QuickReplies(node));
                    yield return new FlowStateUpdate(new FlowState(nodeId, Awaiting: true, Retries: 0, Ended: false));
                    yield break;

                case "branch":
                    nodeId = node.Cases?.FirstOrDefault(c => FlowConditionEvaluator.Evaluate(c.If, variables, turn.InboundText))?.Next
                        ?? node.Default
                        ?? throw new FlowExecutionException($"Branch '{nodeId}' matched no case and has no default.");
                    break;

                case "set":
                    var values = (node.Values ?? []).ToDictionary(kv => kv.Key, kv => FlowTemplate.Render(kv.Value, variables));
                    foreach (var (name, value) in values) variables[name] = value;
                    yield return new VariablesUpdate(values);
                    nodeId = node.Next;
                    break;

                case "webhook":
                    var request = BuildWebhookRequest(nodeId, node, variables, turn);
                    yield return new ToolCallUpdate(request.CallId, request.Name, request.ArgumentsJson);
                    var outcome = await CallWebhookAsync(request, node, cancellationToken);
                    yield return new ToolResultUpdate(request.CallId, request.Name, outcome.ResultJson, outcome.Error is not null);
                    if (outcome.Error is not null)
                    {
                        nodeId = node.OnError ?? throw new FlowExecutionException($"Webhook '{nodeId}' failed: {outcome.Error}");
                        break;
                    }
                    if (outcome.Captured.Count > 0)
                    {
                        foreach (var (name, value) in outcome.Captured) variables[name] = value;
                        yield return new VariablesUpdate(outcome.Captured);
                    }
                    nodeId = node.Next;
                    break;

                case "prompt":
                    if (turn.Generate is null)
                        throw new FlowExecutionException($"Prompt node '{nodeId}' needs a model, and none is available.");
                    var deferred = new List<AgentUpdate>();
                    await foreach (var generated in turn.Generate(FlowTemplate.Render(node.Prompt ?? "", variables), node.Model, variables, cancellationToken))
                    {
                        switch (generated)
                        {
                            case VariablesUpdate set:
                                foreach (var (name, value) in set.Values) variables[name] = value;
                                yield return generated;
                                break;
                            case CloseThreadUpdate or HandOffUpdate:
                                deferred.Add(generated);
                                break;
                            default:
                                yield return generated;
                                break;
                        }
                    }
                    if (deferred.Count > 0)
                    {
                        // The model ended the conversation or handed it off: the flow stops here.
                        yield return new FlowStateUpdate(new FlowState(nodeId, Awaiting: false, Retries: 0, Ended: true));
                        foreach (var effect in deferred) yield return effect;
                        yield break;
                    }
                    nodeId = node.Next;
                    break;

                case "handoff":
                    if (!string.IsNullOrEmpty(node.Text)) yield return new OutboundMessageUpdate(FlowTemplate.Render(node.Text, variables), []);
                    yield return new HandOffUpdate(node.Reason);
                    yield return new FlowStateUpdate(new FlowState(nodeId, Awaiting: false, Retries: 0, Ended: true));
                    yield break;

                case "end":
                    if (!string.IsNullOrEmpty(node.Text)) yield return new OutboundMessageUpdate(FlowTemplate.Render(node.Text, variables), []);
                    yield return new FlowStateUpdate(new FlowState(nodeId, Awaiting: false, Retries: 0, Ended: true));
                    yield return new CloseThreadUpdate(string.IsNullOrWhiteSpace(node.Reason) ? "flow_completed" : node.Reason);
                    yield break;

                default:
                    throw new FlowExecutionException($"Node '{nodeId}' has unknown type '{node.Type}'.");
            }
        }

        // A say with no next: the next message starts the flow over.
        yield return new FlowStateUpdate(FlowState.Initial);
    }

    private static IReadOnlyList<string> QuickReplies(FlowNode ask) =>
        ask.Validate is { Kind: "choice", Choices: { } choices } ? choices : [];

    private sealed record WebhookRequest(string CallId, string Name, string Method, string Url, IReadOnlyDictionary<string, string> Headers, string BodyJson, string ArgumentsJson);

    private sealed record WebhookOutcome(string ResultJson, string? Error, IReadOnlyDictionary<string, string> Captured);

    private static WebhookRequest BuildWebhookRequest(string nodeId, FlowNode node, IReadOnlyDictionary<string, string> variables, FlowTurn turn)
    {
        var method = (node.Method ?? "POST").ToUpperInvariant();
        var url = FlowTemplate.Render(node.Url ?? "", variables);
        var headers = (node.Headers ?? []).ToDictionary(kv => kv.Key, kv => FlowTemplate.Render(kv.Value, variables));
        string body;
        if (node.Body is { } template)
        {
            body = FlowTemplate.RenderJson(template, variables);
        }
        else
        {
            var vars = new JsonObject();
            foreach (var (name, value) in variables) vars[name] = value;
            body = new JsonObject { ["threadId"] = turn.ThreadId.ToString("D"), ["variables"] = vars, ["message"] = turn.InboundText }.ToJsonString();
        }
        var arguments = new JsonObject { ["url"] = url, ["method"] = method, ["body"] = JsonNode.Parse(body) }.ToJsonString();
        return new WebhookRequest($"call_{Guid.NewGuid():N}", $"webhook:{nodeId}", method, url, headers, body, arguments);
    }

    private async Task<WebhookOutcome> CallWebhookAsync(WebhookRequest request, FlowNode node, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timeoutMs = node.TimeoutMs ?? DefaultWebhookTimeoutMs;
        timeout.CancelAfter(timeoutMs);
        try
        {
            using var message = new HttpRequestMessage(new HttpMethod(request.Method), request.Url);
            if (request.Method is not ("GET" or "HEAD"))
                message.Content = new StringContent(request.BodyJson, Encoding.UTF8, "application/json");
            foreach (var (name, value) in request.Headers)
                if (!message.Headers.TryAddWithoutValidation(name, value))
                    message.Content?.Headers.TryAddWithoutValidation(name, value);

            using var response = await httpClientFactory.CreateClient(WebhookClientName).SendAsync(message, timeout.Token);
            var text = await response.Content.ReadAsStringAsync(timeout.Token);
            if (!response.IsSuccessStatusCode)
                return Failure($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
            JsonElement json;
            try
            {
                json = JsonDocument.Parse(string.IsNullOrWhiteSpace(text) ? "null" : text).RootElement.Clone();
            }
            catch (JsonException)
            {
                return Failure("the response is not JSON");
            }
            var captured = new Dictionary<string, string>();
            foreach (var (name, path) in node.Capture ?? [])
                if (TryCapture(json, path, out var value)) captured[name] = value;
            return new WebhookOutcome(json.GetRawText(), null, captured);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return Failure($"timed out after {timeoutMs} ms");
        }
        catch (HttpRequestException ex)
        {
            return Failure(ex.Message);
        }
        catch (InvalidOperationException ex) // e.g. an invalid URL after templating
        {
            return Failure(ex.Message);
        }
        catch (UriFormatException ex)
        {
            return Failure(ex.Message);
        }
    }

    private static WebhookOutcome Failure(string error) =>
        new(new JsonObject { ["error"] = error }.ToJsonString(), error, new Dictionary<string, string>());

    /// <summary>Follows a dotted path (<c>a.b.0.c</c>; <c>$</c> = the whole body). Strings are captured raw, other values as JSON.</summary>
    internal static bool TryCapture(JsonElement json, string path, out string value)
    {
        value = "";
        var current = json;
        if (path.Trim() != "$")
        {
            foreach (var segment in path.Trim().TrimStart('$', '.').Split('.'))
            {
                if (current.ValueKind == JsonValueKind.Object && current.TryGetProperty(segment, out var child)) current = child;
                else if (current.ValueKind == JsonValueKind.Array && int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var i) && i < current.GetArrayLength()) current = current[i];
                else return false;
            }
        }
        if (current.ValueKind is JsonValueKind.Undefined) return false;
        value = current.ValueKind == JsonValueKind.String ? current.GetString()! : current.GetRawText();
        return true;
    }
}
