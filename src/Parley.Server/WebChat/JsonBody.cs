using System.Buffers;
using System.Text.Json;
using Parley.Core;

namespace Parley.Server.WebChat;

/// <summary>
/// Reads and validates JSON request bodies field by field, so every error names the offending field
/// (<c>message: must be a string</c>) rather than a serializer's path. Unknown fields are ignored: the seeds do not
/// forbid them. Throws <see cref="ParleyException"/> (400) for every problem.
/// </summary>
public static class JsonBody
{
    /// <summary>Reads the body as one JSON object of at most <paramref name="maxBytes"/> bytes.</summary>
    /// <exception cref="ParleyException">Empty, too large, not JSON, or not an object.</exception>
    public static async Task<JsonElement> ReadObjectAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes) throw TooLarge(maxBytes);
        // Sized by Content-Length when the client sent one (one byte more, to see the end): a typical message body is a
        // few dozen bytes, and a 4 KiB buffer per request was garbage the collector had to clear (ingest benchmark).
        // Never more than 4 KiB up front: the length is the client's word, and the buffer grows as bytes arrive.
        var initial = request.ContentLength is { } length ? (int)length + 1 : maxBytes + 1;
        var buffer = new ArrayBufferWriter<byte>(Math.Min(initial, 4096));
        while (true)
        {
            var memory = buffer.GetMemory(1);
            memory = memory[..Math.Min(memory.Length, maxBytes + 1 - buffer.WrittenCount)];
            var read = await request.Body.ReadAsync(memory, cancellationToken);
            if (read == 0) break;
            buffer.Advance(read);
            if (buffer.WrittenCount > maxBytes) throw TooLarge(maxBytes);
        }
        if (buffer.WrittenCount == 0) throw ParleyException.BadRequest("body: a JSON object is required.");
        try
        {
            using var document = JsonDocument.Parse(buffer.WrittenMemory);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw ParleyException.BadRequest("body: must be a JSON object.");
            return document.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw ParleyException.BadRequest($"body: not valid JSON ({ex.Message.Split('.')[0]}).");
        }
    }

    /// <summary>A required string property.</summary>
    /// <exception cref="ParleyException">Missing, not a string, or (when <paramref name="allowBlank"/> is false) empty or only white space.</exception>
    public static string RequiredString(JsonElement body, string name, int maxLength, bool allowBlank = false)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
            throw ParleyException.BadRequest($"{name}: is required.");
        return CheckString(value, name, maxLength, allowBlank);
    }

    /// <summary>An optional string property; null when absent or null.</summary>
    public static string? OptionalString(JsonElement body, string name, int maxLength)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        return CheckString(value, name, maxLength, allowBlank: false);
    }

    /// <summary>A required UUID given as a string.</summary>
    public static Guid RequiredUuid(JsonElement body, string name)
    {
        var text = RequiredString(body, name, 100);
        return Guid.TryParse(text, out var id) ? id : throw ParleyException.BadRequest($"{name}: must be a UUID, got '{Truncate(text)}'.");
    }

    /// <summary>An optional object whose values are all strings (seed: <c>additionalProperties: {type: string}</c>); empty when absent or null.</summary>
    public static Dictionary<string, string> OptionalStringMap(JsonElement body, string name, int maxEntries = 100, int maxKeyLength = 200, int maxValueLength = 2000)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return map;
        if (value.ValueKind != JsonValueKind.Object) throw ParleyException.BadRequest($"{name}: must be an object of strings.");
        foreach (var property in value.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.String)
                throw ParleyException.BadRequest($"{name}.{Truncate(property.Name)}: must be a string, got {Describe(property.Value.ValueKind)}.");
            if (property.Name.Length is 0 || property.Name.Length > maxKeyLength)
                throw ParleyException.BadRequest($"{name}: keys must be 1-{maxKeyLength} characters.");
            var text = property.Value.GetString()!;
            if (text.Length > maxValueLength)
                throw ParleyException.BadRequest($"{name}.{Truncate(property.Name)}: must be at most {maxValueLength} characters.");
            map[property.Name] = text;
            if (map.Count > maxEntries) throw ParleyException.BadRequest($"{name}: at most {maxEntries} entries.");
        }
        return map;
    }

    /// <summary>Parses a UUID route value.</summary>
    /// <exception cref="ParleyException">Not a UUID.</exception>
    public static Guid RouteUuid(string value, string name) =>
        Guid.TryParse(value, out var id) ? id : throw ParleyException.BadRequest($"{name}: must be a UUID, got '{Truncate(value)}'.");

    private static string CheckString(JsonElement value, string name, int maxLength, bool allowBlank)
    {
        if (value.ValueKind != JsonValueKind.String)
            throw ParleyException.BadRequest($"{name}: must be a string, got {Describe(value.ValueKind)}.");
        var text = value.GetString()!;
        if (!allowBlank && string.IsNullOrWhiteSpace(text)) throw ParleyException.BadRequest($"{name}: must not be empty.");
        if (text.Length > maxLength) throw ParleyException.BadRequest($"{name}: must be at most {maxLength} characters, got {text.Length}.");
        return text;
    }

    private static ParleyException TooLarge(int maxBytes) => ParleyException.BadRequest($"body: larger than the limit of {maxBytes} bytes.");

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.Null => "null",
        _ => "a string",
    };

    private static string Truncate(string text) => text.Length <= 60 ? text : text[..60] + "…";
}
