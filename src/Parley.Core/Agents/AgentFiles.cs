using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Core.Agents.Flow;
using YamlDotNet.RepresentationModel;

namespace Parley.Core.Agents;

/// <summary>An agent file that cannot be used; the message names the file and the field.</summary>
public sealed class AgentDefinitionException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads agent files: <c>*.json</c>, <c>*.yaml</c> or <c>*.yml</c>, one agent each, in the format of docs/agents.md.
/// </summary>
public static class AgentFiles
{
    /// <summary>File extensions that hold agents.</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".json", ".yaml", ".yml"];

    /// <summary>Parses and validates an agent file.</summary>
    /// <param name="fileName">The file's name; its extension picks JSON or YAML and it prefixes every error.</param>
    /// <param name="content">The file's text.</param>
    /// <exception cref="AgentDefinitionException">The file is not valid JSON/YAML, has an unknown field, or fails validation.</exception>
    public static AgentDefinition Parse(string fileName, string content)
    {
        AgentDefinition? definition;
        try
        {
            var json = Path.GetExtension(fileName).ToLowerInvariant() is ".yaml" or ".yml" ? YamlToJson(content) : content;
            definition = JsonSerializer.Deserialize<AgentDefinition>(json, AgentDefinition.FileJsonOptions);
        }
        catch (Exception ex) when (ex is JsonException or YamlDotNet.Core.YamlException or NotSupportedException)
        {
            throw new AgentDefinitionException($"{fileName}: {ex.Message}", ex);
        }
        if (definition is null) throw new AgentDefinitionException($"{fileName}: the file is empty.");
        var errors = Validate(definition);
        if (errors.Count > 0) throw new AgentDefinitionException($"{fileName}: {string.Join("; ", errors)}");
        return definition;
    }

    /// <summary>Checks the rules a definition must meet; returns one message per problem, naming the field.</summary>
    public static IReadOnlyList<string> Validate(AgentDefinition definition)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(definition.Name) || definition.Name.Length > 200) errors.Add("name: required, 1-200 characters");
        if (definition.WindowSeconds is < 60 or > 31_536_000) errors.Add("windowSeconds: must be between 60 and 31536000");
        if (definition.SmsMaxTokens is < 1) errors.Add("smsMaxTokens: must be at least 1");
        if (definition.SmsTemperature is < 0 or > 2) errors.Add("smsTemperature: must be between 0 and 2");
        switch (definition.Mode)
        {
            case AgentMode.FLOW when definition.Flow is null:
                errors.Add("flow: required in FLOW mode");
                break;
            case AgentMode.FLOW:
                errors.AddRange(FlowGraphValidator.Validate(definition.Flow).Select(e => "flow." + e));
                break;
            case AgentMode.PROMPT:
                if (string.IsNullOrWhiteSpace(definition.Instructions)) errors.Add("instructions: required in PROMPT mode");
                if (string.IsNullOrWhiteSpace(definition.Model)) errors.Add("model: required in PROMPT mode (the name of a model under Parley:Models)");
                break;
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < (definition.Tools?.Count ?? 0); i++)
        {
            var tool = definition.Tools![i];
            var path = $"tools.{i}";
            if (!System.Text.RegularExpressions.Regex.IsMatch(tool.EffectiveName, "^[A-Za-z0-9_-]{1,64}$"))
                errors.Add($"{path}.name: 1-64 letters, digits, '_' or '-'");
            else if (!names.Add(tool.EffectiveName))
                errors.Add($"{path}.name: '{tool.EffectiveName}' is used twice");
            if (tool.Type == "webhook")
            {
                if (!Uri.TryCreate(tool.Url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                    errors.Add($"{path}.url: an absolute http(s) URL is required");
                if (tool.Parameters is not { ValueKind: JsonValueKind.Object } schema)
                    errors.Add($"{path}.parameters: a JSON Schema object is required");
                else
                {
                    try { _ = NJsonSchema.JsonSchema.FromJsonAsync(schema.GetRawText()).GetAwaiter().GetResult(); }
                    catch (Exception ex) when (ex is JsonException or Newtonsoft.Json.JsonException or InvalidOperationException or NotSupportedException)
                    {
                        errors.Add($"{path}.parameters: not a usable JSON Schema ({ex.Message})");
                    }
                }
                if (tool.TimeoutMs is < 1 or > 120_000) errors.Add($"{path}.timeoutMs: must be from 1 to 120000");
            }
            else if (!Tools.BuiltInTools.IsBuiltIn(tool.Type))
                errors.Add($"{path}.type: must be webhook, end_conversation, set_variable or hand_off");
        }
        return errors;
    }

    /// <summary>SHA-256 hex of the definition's canonical JSON: equal definitions hash equal whatever the file's layout.</summary>
    public static string ContentHash(AgentDefinition definition) =>
        Convert.ToHexStringLower(SHA256.HashData(JsonSerializer.SerializeToUtf8Bytes(definition, AgentDefinition.FileJsonOptions)));

    /// <summary>A stable agent id for a file that sets none: a name-based UUID from the organization and the file name.</summary>
    public static Guid DeriveAgentId(Guid organizationId, string fileName)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{organizationId:D}/{Path.GetFileNameWithoutExtension(fileName).ToLowerInvariant()}"));
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80); // version 8 (custom)
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC 9562 variant
        return new Guid(hash.AsSpan(0, 16), bigEndian: true);
    }

    /// <summary>Converts a YAML document to JSON, typing plain scalars as YAML 1.2's core schema does (null, booleans, numbers).</summary>
    internal static string YamlToJson(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        if (stream.Documents.Count == 0) return "null";
        return (ToJson(stream.Documents[0].RootNode) ?? JsonValue.Create((string?)null))?.ToJsonString() ?? "null";
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode list => new JsonArray(list.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => ConvertScalar(scalar),
        _ => throw new NotSupportedException($"Unsupported YAML node at line {node.Start.Line}."),
    };

    private static JsonNode? ConvertScalar(YamlScalarNode scalar)
    {
        var value = scalar.Value ?? "";
        if (scalar.Style is not YamlDotNet.Core.ScalarStyle.Plain) return JsonValue.Create(value);
        if (value is "" or "~" or "null" or "Null" or "NULL") return null;
        if (value is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (value is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && char.IsDigit(value[^1])) return JsonValue.Create(d);
        return JsonValue.Create(value);
    }
}
