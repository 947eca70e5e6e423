using System.Text.RegularExpressions;

namespace Parley.Core.Agents.Flow;

/// <summary>Checks a <see cref="FlowGraph"/> when its file is loaded, so a broken flow never reaches a conversation.</summary>
public static class FlowGraphValidator
{
    private static readonly HashSet<string> NodeTypes = ["say", "ask", "branch", "webhook", "set", "prompt", "handoff", "end"];
    private static readonly HashSet<string> ValidationKinds = ["text", "email", "phone", "number", "choice", "regex"];

    /// <summary>Returns one message per problem, each naming its path (<c>nodes.ask_email.next: unknown node 'foo'</c>); empty when valid.</summary>
    public static IReadOnlyList<string> Validate(FlowGraph graph)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(graph.Start)) errors.Add("start: required");
        else if (!graph.Nodes.ContainsKey(graph.Start)) errors.Add($"start: unknown node '{graph.Start}'");
        if (graph.Nodes.Count == 0) errors.Add("nodes: at least one node is required");

        foreach (var (id, node) in graph.Nodes)
        {
            var path = $"nodes.{id}";
            void Reference(string field, string? target, bool required)
            {
                if (target is null)
                {
                    if (required) errors.Add($"{path}.{field}: required");
                }
                else if (!graph.Nodes.ContainsKey(target)) errors.Add($"{path}.{field}: unknown node '{target}'");
            }
            void Require(string field, string? value)
            {
                if (string.IsNullOrWhiteSpace(value)) errors.Add($"{path}.{field}: required");
            }

            if (!NodeTypes.Contains(node.Type))
            {
                errors.Add($"{path}.type: must be one of {string.Join(", ", NodeTypes)}, got '{node.Type}'");
                continue;
            }
            switch (node.Type)
            {
                case "say":
                    Require("text", node.Text);
                    Reference("next", node.Next, required: false);
                    break;
                case "ask":
                    Require("text", node.Text);
                    Require("variable", node.Variable);
                    Reference("next", node.Next, required: true);
                    Reference("onInvalid", node.OnInvalid, required: false);
                    if (node.MaxRetries is < 0) errors.Add($"{path}.maxRetries: must be 0 or more");
                    if (node.Validate is { } rule) ValidateRule($"{path}.validate", rule, errors);
                    break;
                case "branch":
                    if ((node.Cases is null || node.Cases.Count == 0) && node.Default is null)
                        errors.Add($"{path}: a branch needs cases or a default");
                    for (var i = 0; i < (node.Cases?.Count ?? 0); i++)
                    {
                        var c = node.Cases![i];
                        ValidateCondition($"{path}.cases.{i}.if", c.If, errors);
                        Reference($"cases.{i}.next", string.IsNullOrEmpty(c.Next) ? null : c.Next, required: true);
                    }
                    Reference("default", node.Default, required: false);
                    break;
                case "webhook":
                    Require("url", node.Url);
                    if (node.Url is { } url && !url.StartsWith("{{", StringComparison.Ordinal) &&
                        !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)))
                        errors.Add($"{path}.url: must be an absolute http(s) URL");
                    if (node.TimeoutMs is < 1 or > 120_000) errors.Add($"{path}.timeoutMs: must be from 1 to 120000");
                    foreach (var (name, capturePath) in node.Capture ?? [])
                        if (string.IsNullOrWhiteSpace(capturePath)) errors.Add($"{path}.capture.{name}: path required");
                    Reference("next", node.Next, required: true);
                    Reference("onError", node.OnError, required: false);
                    break;
                case "prompt":
                    Require("prompt", node.Prompt);
                    Reference("next", node.Next, required: false);
                    break;
                case "set":
                    if (node.Values is null || node.Values.Count == 0) errors.Add($"{path}.values: at least one value is required");
                    Reference("next", node.Next, required: true);
                    break;
            }
        }
        return errors;
    }

    private static void ValidateRule(string path, FlowValidation rule, List<string> errors)
    {
        if (!ValidationKinds.Contains(rule.Kind))
        {
            errors.Add($"{path}.kind: must be one of {string.Join(", ", ValidationKinds)}, got '{rule.Kind}'");
            return;
        }
        if (rule.Kind == "choice" && (rule.Choices is null || rule.Choices.Count == 0 || rule.Choices.Any(string.IsNullOrWhiteSpace)))
            errors.Add($"{path}.choices: at least one non-empty choice is required");
        if (rule.Kind == "regex") CheckRegex($"{path}.pattern", rule.Pattern, errors);
        if (rule.Min is { } min && rule.Max is { } max && min > max) errors.Add($"{path}: min is greater than max");
    }

    private static void ValidateCondition(string path, FlowCondition condition, List<string> errors)
    {
        if ((condition.Variable is not null) == condition.Message)
            errors.Add($"{path}: exactly one subject is required (variable, or message: true)");
        var operators = new object?[] { condition.EqualTo, condition.NotEquals, condition.In, condition.Contains, condition.ContainsAny, condition.Matches, condition.Exists, condition.GreaterThan, condition.LessThan };
        if (operators.All(o => o is null))
            errors.Add($"{path}: at least one operator is required (equals, notEquals, in, contains, containsAny, matches, exists, greaterThan, lessThan)");
        if (condition.Matches is not null) CheckRegex($"{path}.matches", condition.Matches, errors);
    }

    private static void CheckRegex(string path, string? pattern, List<string> errors)
    {
        if (string.IsNullOrEmpty(pattern))
        {
            errors.Add($"{path}: required");
            return;
        }
        try
        {
            _ = new Regex(pattern, RegexOptions.None, FlowAnswerValidator.RegexTimeout);
        }
        catch (ArgumentException ex)
        {
            errors.Add($"{path}: not a valid regular expression ({ex.Message})");
        }
    }
}
