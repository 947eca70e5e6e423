using System.Globalization;
using System.Net.Mail;
using System.Text.RegularExpressions;

namespace Parley.Core.Agents.Flow;

/// <summary>Validates and normalizes answers to <c>ask</c> nodes (docs/agents.md, "Validation").</summary>
public static class FlowAnswerValidator
{
    /// <summary>Time a <c>regex</c> rule may take per answer.</summary>
    public static readonly TimeSpan RegexTimeout = TimeSpan.FromSeconds(1);

    /// <summary>Checks <paramref name="answer"/> against <paramref name="rule"/> (null = any non-empty text).</summary>
    /// <param name="rule">The ask's rule.</param>
    /// <param name="answer">What the user said.</param>
    /// <param name="normalized">The value to store: trimmed, and normalized per kind.</param>
    /// <returns>True when the answer is valid.</returns>
    public static bool TryValidate(FlowValidation? rule, string answer, out string normalized)
    {
        var text = answer.Trim();
        normalized = text;
        if (text.Length == 0) return false;
        switch (rule?.Kind ?? "text")
        {
            case "text":
                return true;
            case "email":
                return TryEmail(text, out normalized);
            case "phone":
                return TryPhone(text, out normalized);
            case "number":
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || double.IsNaN(number) || double.IsInfinity(number)) return false;
                if (rule!.Min is { } min && number < min) return false;
                if (rule.Max is { } max && number > max) return false;
                normalized = number.ToString(CultureInfo.InvariantCulture);
                return true;
            case "choice":
                var choices = rule!.Choices ?? [];
                var match = choices.FirstOrDefault(c => string.Equals(c.Trim(), text, StringComparison.OrdinalIgnoreCase));
                if (match is null && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index >= 1 && index <= choices.Count)
                    match = choices[index - 1];
                if (match is null) return false;
                normalized = match;
                return true;
            case "regex":
                try
                {
                    return Regex.IsMatch(text, $"^(?:{rule!.Pattern})$", RegexOptions.None, RegexTimeout);
                }
                catch (RegexMatchTimeoutException)
                {
                    return false;
                }
            default:
                return false;
        }
    }

    /// <summary>The retry message used when an ask sets no <c>retryText</c>.</summary>
    public static string DefaultRetryText(FlowValidation? rule) => (rule?.Kind ?? "text") switch
    {
        "email" => "Please enter a valid email address.",
        "phone" => "Please enter a valid phone number.",
        "number" when rule!.Min is { } min && rule.Max is { } max => $"Please enter a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}.",
        "number" => "Please enter a number.",
        "choice" => $"Please choose one of: {string.Join(", ", rule!.Choices ?? [])}.",
        "regex" => "That answer is not in the expected format. Please try again.",
        _ => "Please enter an answer.",
    };

    private static bool TryEmail(string text, out string normalized)
    {
        normalized = text;
        if (text.Contains(' ') || text.Count(c => c == '@') != 1) return false;
        try
        {
            var address = new MailAddress(text);
            if (address.Address != text || !address.Host.Contains('.') || address.Host.StartsWith('.') || address.Host.EndsWith('.')) return false;
            normalized = $"{address.User}@{address.Host.ToLowerInvariant()}";
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static bool TryPhone(string text, out string normalized)
    {
        normalized = text;
        var plus = text.StartsWith('+');
        var body = plus ? text[1..] : text;
        var digits = new System.Text.StringBuilder();
        foreach (var c in body)
        {
            if (char.IsAsciiDigit(c)) digits.Append(c);
            else if (c is not (' ' or '-' or '.' or '(' or ')')) return false;
        }
        if (digits.Length is < 7 or > 15) return false;
        normalized = (plus ? "+" : "") + digits;
        return true;
    }
}
