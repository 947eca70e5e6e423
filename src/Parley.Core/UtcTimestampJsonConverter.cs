using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Core;

/// <summary>
/// Writes every timestamp as ISO 8601 UTC with milliseconds and a <c>Z</c> (<c>2026-11-24T20:01:02.345Z</c>), so all
/// dialects and payloads agree; reads any ISO 8601 form.
/// </summary>
public sealed class UtcTimestampJsonConverter : JsonConverter<DateTimeOffset>
{
    /// <summary>The written format.</summary>
    public const string Format = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'";

    /// <inheritdoc />
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteStringValue(ToText(value));

    /// <summary><paramref name="value"/> as Parley writes every timestamp: ISO 8601 UTC, milliseconds, <c>Z</c>.</summary>
    public static string ToText(DateTimeOffset value) => value.UtcDateTime.ToString(Format, CultureInfo.InvariantCulture);
}
