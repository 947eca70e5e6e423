using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Parley.Core.Agents.Flow;

/// <summary>Renders <c>{{variable}}</c> templates (docs/agents.md): unset variables render as empty text.</summary>
public static partial class FlowTemplate
{
    [GeneratedRegex(@"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")]
    private static partial Regex Placeholder();

    /// <summary>Replaces every <c>{{ name }}</c> in <paramref name="template"/> by the variable's value.</summary>
    public static string Render(string template, IReadOnlyDictionary<string, string> variables) =>
        template.Contains("{{", StringComparison.Ordinal)
            ? Placeholder().Replace(template, m => variables.TryGetValue(m.Groups[1].Value, out var value) ? value : "")
            : template;

    /// <summary>Renders every string leaf of <paramref name="json"/> (object keys are left as they are); returns JSON text.</summary>
    public static string RenderJson(JsonElement json, IReadOnlyDictionary<string, string> variables) =>
        RenderNode(JsonNode.Parse(json.GetRawText()), variables)?.ToJsonString() ?? "null";

    private static JsonNode? RenderNode(JsonNode? node, IReadOnlyDictionary<string, string> variables)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                    obj[key] = RenderNode(obj[key]?.DeepClone(), variables);
                return obj;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                    array[i] = RenderNode(array[i]?.DeepClone(), variables);
                return array;
            case JsonValue value when value.GetValueKind() == JsonValueKind.String:
                return JsonValue.Create(Render(value.GetValue<string>(), variables));
            default:
                return node;
        }
    }
}
