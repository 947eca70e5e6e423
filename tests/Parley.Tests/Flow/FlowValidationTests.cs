using Parley.Core.Agents;
using Parley.Core.Agents.Flow;

namespace Parley.Tests.Flow;

/// <summary>Answer validation, conditions, templates and the checks made when an agent file is loaded.</summary>
public sealed class FlowValidationTests
{
    [Theory]
    [InlineData("email", " ada@Example.com ", true, "ada@example.com")]
    [InlineData("email", "ada@example", false, "")]
    [InlineData("email", "ada example.com", false, "")]
    [InlineData("email", "a@b@c.com", false, "")]
    [InlineData("phone", "+1 (555) 010-9999", true, "+15550109999")]
    [InlineData("phone", "555-0100", true, "5550100")]
    [InlineData("phone", "12345", false, "")]
    [InlineData("phone", "call me", false, "")]
    [InlineData("number", "3.50", true, "3.5")]
    [InlineData("number", "-1e3", true, "-1000")]
    [InlineData("number", "ten", false, "")]
    [InlineData("text", "   ", false, "")]
    [InlineData("text", " hi ", true, "hi")]
    public void Answers_are_validated_and_normalized(string kind, string answer, bool valid, string normalized)
    {
        Assert.Equal(valid, FlowAnswerValidator.TryValidate(new FlowValidation { Kind = kind }, answer, out var value));
        if (valid) Assert.Equal(normalized, value);
    }

    [Fact]
    public void Choices_match_by_text_in_any_case_or_by_position_and_regex_must_match_in_full()
    {
        var choice = new FlowValidation { Kind = "choice", Choices = ["Red", "Green"] };
        Assert.True(FlowAnswerValidator.TryValidate(choice, "GREEN", out var byText));
        Assert.Equal("Green", byText);
        Assert.True(FlowAnswerValidator.TryValidate(choice, "1", out var byIndex));
        Assert.Equal("Red", byIndex);
        Assert.False(FlowAnswerValidator.TryValidate(choice, "3", out _));
        Assert.False(FlowAnswerValidator.TryValidate(choice, "Blue", out _));

        var zip = new FlowValidation { Kind = "regex", Pattern = "[0-9]{5}" };
        Assert.True(FlowAnswerValidator.TryValidate(zip, "12345", out _));
        Assert.False(FlowAnswerValidator.TryValidate(zip, "123456", out _));
        Assert.False(FlowAnswerValidator.TryValidate(new FlowValidation { Kind = "number", Min = 1, Max = 5 }, "6", out _));
    }

    [Fact]
    public void Conditions_compare_ignoring_case_and_all_operators_must_hold()
    {
        var vars = new Dictionary<string, string> { ["plan"] = " Pro ", ["seats"] = "12" };
        Assert.True(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "plan", EqualTo = "pro" }, vars, ""));
        Assert.False(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "plan", NotEquals = "PRO" }, vars, ""));
        Assert.True(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "plan", In = ["free", "pro"] }, vars, ""));
        Assert.True(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "seats", GreaterThan = 10, LessThan = 20 }, vars, ""));
        Assert.False(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "seats", GreaterThan = 10, LessThan = 11 }, vars, ""));
        Assert.False(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "plan", GreaterThan = 1 }, vars, ""));
        Assert.True(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "missing", Exists = false }, vars, ""));
        Assert.False(FlowConditionEvaluator.Evaluate(new FlowCondition { Variable = "plan", Exists = false }, vars, ""));
        Assert.True(FlowConditionEvaluator.Evaluate(new FlowCondition { Message = true, Matches = @"\border\s+#?\d+" }, vars, "Where is ORDER #42?"));
        Assert.True(FlowConditionEvaluator.Evaluate(new FlowCondition { Message = true, Contains = "refund" }, vars, "I want a REFUND now"));
    }

    [Fact]
    public void Templates_fill_variables_and_leave_unknown_ones_empty()
    {
        var vars = new Dictionary<string, string> { ["name"] = "Ada", ["order.id"] = "7" };
        Assert.Equal("Hi Ada, order 7! ()", FlowTemplate.Render("Hi {{ name }}, order {{order.id}}! ({{nope}})", vars));
        Assert.Equal("""{"a":"Ada","b":[1,"x7"],"c":true}""",
            FlowTemplate.RenderJson(System.Text.Json.JsonDocument.Parse("""{"a":"{{name}}","b":[1,"x{{order.id}}"],"c":true}""").RootElement, vars));
    }

    [Theory]
    [InlineData("start: nope\nnodes:\n  a: { type: say, text: hi }", "flow.start: unknown node 'nope'")]
    [InlineData("start: a\nnodes:\n  a: { type: shout, text: hi }", "flow.nodes.a.type: must be one of")]
    [InlineData("start: a\nnodes:\n  a: { type: say }", "flow.nodes.a.text: required")]
    [InlineData("start: a\nnodes:\n  a: { type: say, text: hi, next: b }", "flow.nodes.a.next: unknown node 'b'")]
    [InlineData("start: a\nnodes:\n  a: { type: ask, text: hi, next: a }", "flow.nodes.a.variable: required")]
    [InlineData("start: a\nnodes:\n  a: { type: ask, text: hi, variable: v, next: a, validate: { kind: choice } }", "flow.nodes.a.validate.choices")]
    [InlineData("start: a\nnodes:\n  a: { type: ask, text: hi, variable: v, next: a, validate: { kind: regex, pattern: '([' } }", "not a valid regular expression")]
    [InlineData("start: a\nnodes:\n  a: { type: ask, text: hi, variable: v, next: a, validate: { kind: zip } }", "flow.nodes.a.validate.kind")]
    [InlineData("start: a\nnodes:\n  a: { type: branch, cases: [ { if: { equals: x }, next: a } ] }", "exactly one subject")]
    [InlineData("start: a\nnodes:\n  a: { type: branch, cases: [ { if: { variable: x }, next: a } ] }", "at least one operator")]
    [InlineData("start: a\nnodes:\n  a: { type: webhook, url: 'ftp://x', next: a }", "flow.nodes.a.url: must be an absolute http(s) URL")]
    [InlineData("start: a\nnodes:\n  a: { type: webhook, url: 'https://x', next: a, timeoutMs: 0 }", "flow.nodes.a.timeoutMs")]
    public void Invalid_flows_are_rejected_with_the_path_of_the_problem(string flow, string expected)
    {
        var yaml = "name: Bad\nmode: FLOW\nflow:\n" + string.Join('\n', flow.Split('\n').Select(l => "  " + l));
        var error = Assert.Throws<AgentDefinitionException>(() => AgentFiles.Parse("bad.yaml", yaml));
        Assert.StartsWith("bad.yaml: ", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Agent_files_reject_unknown_fields_and_yaml_and_json_files_hash_alike()
    {
        var typo = Assert.Throws<AgentDefinitionException>(() => AgentFiles.Parse("a.yaml", "name: A\nmode: FLOW\nwindowSecs: 10\nflow: { start: a, nodes: { a: { type: say, text: hi } } }"));
        Assert.Contains("windowSecs", typo.Message);

        var yaml = AgentFiles.Parse("a.yaml", "name: A\nsmsMaxTokens: 5\nflow: { start: a, nodes: { a: { type: say, text: 'hi' } } }");
        var json = AgentFiles.Parse("a.json", """{"name": "A", "smsMaxTokens": 5, "flow": {"start": "a", "nodes": {"a": {"type": "say", "text": "hi"}}}}""");
        Assert.Equal(5, yaml.SmsMaxTokens);
        Assert.Equal(AgentFiles.ContentHash(json), AgentFiles.ContentHash(yaml));
        Assert.Equal(AgentFiles.DeriveAgentId(Guid.Empty, "agents/Lead.yaml"), AgentFiles.DeriveAgentId(Guid.Empty, "other/lead.json"));
        Assert.NotEqual(AgentFiles.DeriveAgentId(Guid.Empty, "a.yaml"), AgentFiles.DeriveAgentId(Guid.NewGuid(), "a.yaml"));
    }
}
