using System.Net;
using System.Text;
using System.Text.Json;
using Parley.Core.Agents;
using Parley.Core.Agents.Flow;

namespace Parley.Tests.Flow;

/// <summary>The FLOW engine, turn by turn, without a server.</summary>
public sealed class FlowRunnerTests
{
    private static readonly Guid ThreadId = Guid.Parse("11111111-2222-4333-8444-555555555555");

    private static FlowGraph Parse(string yaml) =>
        AgentFiles.Parse("test.yaml", "name: Test\nmode: FLOW\nflow:\n" + string.Join('\n', yaml.Split('\n').Select(l => "  " + l))).Flow!;

    /// <summary>Plays a conversation: applies each turn's updates to state and variables like the run engine does.</summary>
    private sealed class Conversation(FlowGraph graph, FlowRunner? runner = null)
    {
        private readonly FlowRunner _runner = runner ?? new FlowRunner(new FakeHttpClientFactory(new FakeHandler()));
        public FlowState State { get; private set; } = FlowState.Initial;
        public Dictionary<string, string> Variables { get; } = new();
        public string? ClosedReason { get; private set; }
        public string? HandOff { get; private set; }
        public List<AgentUpdate> LastUpdates { get; } = [];

        public async Task<List<string>> SayAsync(string text)
        {
            LastUpdates.Clear();
            await foreach (var update in _runner.RunTurnAsync(graph, new FlowTurn(ThreadId, State, Variables, text), TestContext.Current.CancellationToken))
            {
                LastUpdates.Add(update);
                switch (update)
                {
                    case FlowStateUpdate s: State = s.State; break;
                    case VariablesUpdate v: foreach (var (k, val) in v.Values) Variables[k] = val; break;
                    case CloseThreadUpdate c: ClosedReason = c.Reason; break;
                    case HandOffUpdate h: HandOff = h.Reason ?? "(none)"; break;
                }
            }
            return LastUpdates.OfType<OutboundMessageUpdate>().Select(m => m.Text).ToList();
        }
    }

    private const string LeadFlow = """
        start: greet
        nodes:
          greet: { type: say, text: "Hello!", next: name }
          name: { type: ask, text: "Your name?", variable: name, next: email }
          email:
            type: ask
            text: "Email, {{name}}?"
            variable: email
            validate: { kind: email }
            retryText: "Bad email, {{name}}."
            next: need
          need:
            type: ask
            text: "Need?"
            variable: need
            validate: { kind: choice, choices: [Sales, Support] }
            next: route
          route:
            type: branch
            cases:
              - if: { variable: need, equals: sales }
                next: bye_sales
            default: human
          bye_sales: { type: end, text: "Bye {{name}} <{{email}}>", reason: qualified }
          human: { type: handoff, text: "A human will help.", reason: support }
        """;

    [Fact]
    public async Task A_lead_flow_asks_validates_retries_branches_and_ends()
    {
        var c = new Conversation(Parse(LeadFlow));
        Assert.Equal(["Hello!", "Your name?"], await c.SayAsync("hi"));
        Assert.Equal(new FlowState("name", true, 0, false), c.State);
        Assert.Equal(["Email, Ada?"], await c.SayAsync("  Ada "));
        Assert.Equal("Ada", c.Variables["name"]);
        Assert.Equal(["Bad email, Ada."], await c.SayAsync("ada at example"));
        Assert.Equal(1, c.State.Retries);
        Assert.Equal(["Need?"], await c.SayAsync("Ada@Example.COM"));
        Assert.Equal("Ada@example.com", c.Variables["email"]);
        var question = c.LastUpdates.OfType<OutboundMessageUpdate>().Single();
        Assert.Equal(["Sales", "Support"], question.QuickReplies);
        Assert.Equal(["Bye Ada <Ada@example.com>"], await c.SayAsync("1"));
        Assert.Equal("Sales", c.Variables["need"]);
        Assert.Equal("qualified", c.ClosedReason);
        Assert.True(c.State.Ended);
        Assert.Empty(await c.SayAsync("anything"));
    }

    [Fact]
    public async Task A_handoff_ends_the_flow_without_closing_the_thread()
    {
        var c = new Conversation(Parse(LeadFlow));
        foreach (var text in new[] { "hi", "Bo", "bo@example.org" }) await c.SayAsync(text);
        Assert.Equal(["A human will help."], await c.SayAsync("support"));
        Assert.Equal("support", c.HandOff);
        Assert.Null(c.ClosedReason);
        Assert.True(c.State.Ended);
    }

    [Fact]
    public async Task After_max_retries_the_flow_goes_to_onInvalid()
    {
        var c = new Conversation(Parse("""
            start: age
            nodes:
              age: { type: ask, text: "Age?", variable: age, validate: { kind: number, min: 0, max: 150 }, maxRetries: 1, onInvalid: skip, next: done }
              skip: { type: say, text: "Never mind." }
              done: { type: say, text: "Age {{age}} noted." }
            """));
        await c.SayAsync("hi");
        Assert.Equal(["Please enter a number from 0 to 150."], await c.SayAsync("old"));
        Assert.Equal(["Never mind."], await c.SayAsync("200"));
        Assert.Equal(FlowState.Initial, c.State); // a say with no next: the next message starts over
        Assert.Equal(["Age?"], await c.SayAsync("again"));
        Assert.Equal(["Age 42.5 noted."], await c.SayAsync("42.50"));
    }

    [Fact]
    public async Task Set_nodes_and_message_conditions_steer_the_flow()
    {
        var c = new Conversation(Parse("""
            start: check
            nodes:
              check:
                type: branch
                cases:
                  - if: { message: true, containsAny: [human, agent] }
                    next: tag
                default: echo
              tag: { type: set, values: { wants: "human via {{channel}}" }, next: told }
              told: { type: say, text: "Noted: {{wants}}." }
              echo: { type: say, text: "You said something else." }
            """));
        c.Variables["channel"] = "web";
        Assert.Equal(["Noted: human via web."], await c.SayAsync("Can I talk to an AGENT?"));
        Assert.Equal("human via web", c.Variables["wants"]);
        Assert.Equal(["You said something else."], await c.SayAsync("weather?"));
    }

    [Fact]
    public async Task A_loop_without_an_ask_fails_the_turn_with_a_clear_message()
    {
        var c = new Conversation(Parse("""
            start: a
            nodes:
              a: { type: say, text: "a", next: b }
              b: { type: branch, default: a }
            """));
        var error = await Assert.ThrowsAsync<FlowExecutionException>(() => c.SayAsync("go"));
        Assert.Contains("loop without an ask", error.Message);
    }

    [Fact]
    public async Task A_webhook_result_is_captured_and_the_call_is_reported()
    {
        var handler = new FakeHandler
        {
            Respond = async request =>
            {
                var body = JsonDocument.Parse(await request.Content!.ReadAsStringAsync()).RootElement;
                Assert.Equal("Ada", body.GetProperty("customer").GetString());
                Assert.Equal("secret-Ada", request.Headers.GetValues("X-Token").Single());
                return Json("""{"order": {"items": [{"sku": "A-1"}], "total": 12.5, "status": "shipped"}}""");
            },
        };
        var runner = new FlowRunner(new FakeHttpClientFactory(handler));
        var c = new Conversation(Parse("""
            start: hook
            nodes:
              hook:
                type: webhook
                url: https://orders.example/lookup
                headers: { X-Token: "secret-{{name}}" }
                body: { customer: "{{name}}", count: 2 }
                capture: { status: order.status, sku: order.items.0.sku, total: order.total, missing: order.nope }
                next: report
                onError: sorry
              report: { type: say, text: "{{sku}} is {{status}} ({{total}})." }
              sorry: { type: say, text: "Sorry." }
            """), runner);
        c.Variables["name"] = "Ada";
        Assert.Equal(["A-1 is shipped (12.5)."], await c.SayAsync("where is it"));
        var call = c.LastUpdates.OfType<ToolCallUpdate>().Single();
        var result = c.LastUpdates.OfType<ToolResultUpdate>().Single();
        Assert.Equal("webhook:hook", call.Name);
        Assert.Equal(call.CallId, result.CallId);
        Assert.False(result.IsError);
        Assert.Equal(2, JsonDocument.Parse(call.ArgumentsJson).RootElement.GetProperty("body").GetProperty("count").GetInt32());
        Assert.False(c.Variables.ContainsKey("missing"));
    }

    [Fact]
    public async Task A_failing_webhook_goes_to_onError_or_fails_the_turn_without_it()
    {
        var handler = new FakeHandler { Respond = _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.BadGateway)) };
        var runner = new FlowRunner(new FakeHttpClientFactory(handler));
        const string flow = """
            start: hook
            nodes:
              hook: { type: webhook, url: "https://x.example/", next: ok ONERROR }
              ok: { type: say, text: "ok" }
              sorry: { type: say, text: "Sorry, try later." }
            """;
        var withFallback = new Conversation(Parse(flow.Replace("ONERROR", ", onError: sorry")), runner);
        Assert.Equal(["Sorry, try later."], await withFallback.SayAsync("go"));
        var result = withFallback.LastUpdates.OfType<ToolResultUpdate>().Single();
        Assert.True(result.IsError);
        Assert.Contains("HTTP 502", result.ResultJson);

        var without = new Conversation(Parse(flow.Replace("ONERROR", "")), runner);
        var error = await Assert.ThrowsAsync<FlowExecutionException>(() => without.SayAsync("go"));
        Assert.Contains("Webhook 'hook' failed: HTTP 502", error.Message);
    }

    [Fact]
    public async Task A_slow_webhook_times_out_as_an_error()
    {
        var handler = new FakeHandler { Respond = async _ => { await Task.Delay(5000, TestContext.Current.CancellationToken); return Json("{}"); } };
        var c = new Conversation(Parse("""
            start: hook
            nodes:
              hook: { type: webhook, url: "https://x.example/", timeoutMs: 50, next: ok, onError: sorry }
              ok: { type: say, text: "ok" }
              sorry: { type: say, text: "timeout" }
            """), new FlowRunner(new FakeHttpClientFactory(handler)));
        Assert.Equal(["timeout"], await c.SayAsync("go"));
        Assert.Contains("timed out after 50 ms", c.LastUpdates.OfType<ToolResultUpdate>().Single().ResultJson);
    }

    private static HttpResponseMessage Json(string json) =>
        new(HttpStatusCode.OK) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
}

/// <summary>A hand-written fake handler: <see cref="Respond"/> decides each response.</summary>
public sealed class FakeHandler : HttpMessageHandler
{
    public Func<HttpRequestMessage, Task<HttpResponseMessage>> Respond { get; init; } = _ => Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        Respond(request).WaitAsync(cancellationToken);
}

public sealed class FakeHttpClientFactory(HttpMessageHandler handler) : IHttpClientFactory
{
    public HttpClient CreateClient(string name) => new(handler, disposeHandler: false);
}
