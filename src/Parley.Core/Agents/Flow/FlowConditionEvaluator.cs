using System.Globalization;
using System.Text.RegularExpressions;

namespace Parley.Core.Agents.Flow;

/// <summary>Evaluates <c>branch</c> conditions (docs/agents.md, "Conditions").</summary>
public static class FlowConditionEvaluator
{
    /// <summary>True when every operator of <paramref name="condition"/> holds for its subject.</summary>
    /// <param name="condition">The condition.</param>
    /// <param name="variables">The thread's variables now.</param>
    /// <param name="inboundText">The message of this turn (the subject when <see cref="FlowCondition.Message"/> is true).</param>
    public static bool Evaluate(FlowCondition condition, IReadOnlyDictionary<string, string> variables, string inboundText)
    {
        string? subject = condition.Message
            ? inboundText
            : condition.Variable is { } name && variables.TryGetValue(name, out var value) ? value : null;
        var text = subject?.Trim() ?? "";
        var ignoreCase = StringComparison.OrdinalIgnoreCase;

        if (condition.Exists is { } exists && exists != (text.Length > 0)) return false;
        if (condition.EqualTo is { } equalTo && !string.Equals(text, equalTo.Trim(), ignoreCase)) return false;
        if (condition.NotEquals is { } notEquals && string.Equals(text, notEquals.Trim(), ignoreCase)) return false;
        if (condition.In is { } options && !options.Any(o => string.Equals(text, o.Trim(), ignoreCase))) return false;
        if (condition.Contains is { } contains && !text.Contains(contains.Trim(), ignoreCase)) return false;
        if (condition.ContainsAny is { } any && !any.Any(o => text.Contains(o.Trim(), ignoreCase))) return false;
        if (condition.Matches is { } pattern)
        {
            try
            {
                if (!Regex.IsMatch(text, pattern, RegexOptions.IgnoreCase, FlowAnswerValidator.RegexTimeout)) return false;
            }
            catch (RegexMatchTimeoutException)
            {
                return false;
            }
        }
        if (condition.GreaterThan is not null || condition.LessThan is not null)
        {
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)) return false;
            if (condition.GreaterThan is { } gt && !(number > gt)) return false;
            if (condition.LessThan is { } lt && !(number < lt)) return false;
        }
        return true;
    }
}
