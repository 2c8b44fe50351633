using System.Text;
using System.Text.Json;

namespace NbpEngine.Loader.Safetensors;

/// <summary>
/// The parsed and validated JSON header of a safetensors file. Parsing is pure (no I/O) so every
/// validation rule can be tested on bytes alone.
/// </summary>
public sealed class SafetensorsHeader
{
    /// <summary>The header may not be longer than this (same bound as the reference implementation).</summary>
    public const long MaxHeaderLength = 100_000_000;

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors in ascending offset order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    private SafetensorsHeader(IReadOnlyDictionary<string, string> metadata, IReadOnlyList<TensorInfo> tensors)
    {
        Metadata = metadata;
        Tensors = tensors;
    }

    /// <summary>Rule names used in <see cref="SafetensorsFormatException.Rule"/>.</summary>
    public static class Rules
    {
        public const string FileTooShort = "file-too-short";
        public const string HeaderLength = "header-length";
        public const string HeaderJson = "header-json";
        public const string DuplicateKey = "duplicate-key";
        public const string EntryFields = "entry-fields";
        public const string DType = "dtype";
        public const string Shape = "shape";
        public const string Offsets = "offsets";
        public const string SizeMismatch = "size-mismatch";
        public const string Layout = "layout";
        public const string BufferLength = "buffer-length";
        public const string Metadata = "metadata";
    }

    /// <summary>
    /// Parses <paramref name="json"/> (the N header bytes) for a file whose byte buffer is
    /// <paramref name="bufferLength"/> bytes long, enforcing every rule of the format.
    /// </summary>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> json, long bufferLength, string path)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new List<TensorInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            // Validate UTF-8 up front: the JSON reader accepts some invalid sequences inside strings lazily.
            new UTF8Encoding(false, true).GetCharCount(json);
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 8 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw Fail(path, Rules.HeaderJson, "the header is not a JSON object");
            while (true)
            {
                if (!reader.Read()) throw Fail(path, Rules.HeaderJson, "unexpected end of the header");
                if (reader.TokenType == JsonTokenType.EndObject) break;
                string key = reader.GetString()!;
                if (!seen.Add(key)) throw Fail(path, Rules.DuplicateKey, $"key '{key}' appears more than once");
                reader.Read();
                if (key == "__metadata__") ReadMetadata(ref reader, metadata, path);
                else tensors.Add(ReadEntry(ref reader, key, path));
            }
            // Anything but whitespace after the object is an error; Read() throws or returns false at the end.
            if (reader.Read()) throw Fail(path, Rules.HeaderJson, "extra content after the header object");
        }
        catch (JsonException e)
        {
            throw Fail(path, Rules.HeaderJson, "the header is not valid JSON: " + e.Message);
        }
        catch (DecoderFallbackException)
        {
            throw Fail(path, Rules.HeaderJson, "the header is not valid UTF-8");
        }

        ValidateLayout(tensors, bufferLength, path);
        return new SafetensorsHeader(metadata, tensors);
    }

    private static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string path)
    {
        if (reader.TokenType == JsonTokenType.Null) return;
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Fail(path, Rules.Metadata, "__metadata__ must be an object of strings");
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string name = reader.GetString()!;
            reader.Read();
            if (reader.TokenType != JsonTokenType.String)
                throw Fail(path, Rules.Metadata, $"__metadata__ value for '{name}' must be a string, found {reader.TokenType}");
            if (!metadata.TryAdd(name, reader.GetString()!))
                throw Fail(path, Rules.DuplicateKey, $"__metadata__ key '{name}' appears more than once");
        }
    }

    private static TensorInfo ReadEntry(ref Utf8JsonReader reader, string name, string path)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw Fail(path, Rules.EntryFields, $"tensor '{name}': entry must be an object");
        string? dtypeText = null;
        List<long>? shape = null;
        List<long>? offsets = null;
        var fields = new HashSet<string>(StringComparer.Ordinal);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string field = reader.GetString()!;
            if (!fields.Add(field)) throw Fail(path, Rules.DuplicateKey, $"tensor '{name}': field '{field}' appears more than once");
            reader.Read();
            switch (field)
            {
                case "dtype":
                    if (reader.TokenType != JsonTokenType.String)
                        throw Fail(path, Rules.EntryFields, $"tensor '{name}': dtype must be a string");
                    dtypeText = reader.GetString();
                    break;
                case "shape":
                    shape = ReadIntegers(ref reader, name, "shape", path);
                    break;
                case "data_offsets":
                    offsets = ReadIntegers(ref reader, name, "data_offsets", path);
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }
        if (dtypeText is null || shape is null || offsets is null)
            throw Fail(path, Rules.EntryFields, $"tensor '{name}': needs dtype, shape and data_offsets");
        if (!TensorDTypeInfo.TryParse(dtypeText, out var dtype))
            throw Fail(path, Rules.DType, $"tensor '{name}': dtype '{dtypeText}' is not supported (expected F32, F16 or BF16)");
        if (offsets.Count != 2)
            throw Fail(path, Rules.Offsets, $"tensor '{name}': data_offsets must hold 2 numbers, found {offsets.Count}");
        foreach (var d in shape)
            if (d < 0) throw Fail(path, Rules.Shape, $"tensor '{name}': negative dimension in shape {TensorInfo.FormatShape(shape)}");
        long begin = offsets[0], end = offsets[1];
        if (begin < 0 || end < begin)
            throw Fail(path, Rules.Offsets, $"tensor '{name}': data_offsets [{begin}, {end}) must satisfy 0 <= begin <= end");

        long expected;
        try
        {
            expected = dtype.SizeInBytes();
            foreach (var d in shape) expected = checked(expected * d);
        }
        catch (OverflowException)
        {
            throw Fail(path, Rules.SizeMismatch, $"tensor '{name}': shape {TensorInfo.FormatShape(shape)} overflows a 64-bit byte count");
        }
        if (expected != end - begin)
            throw Fail(path, Rules.SizeMismatch,
                $"tensor '{name}': shape {TensorInfo.FormatShape(shape)} of {dtypeText} needs {expected} bytes, data_offsets span {end - begin}");
        return new TensorInfo(name, dtype, shape.ToArray(), begin, end);
    }

    private static List<long> ReadIntegers(ref Utf8JsonReader reader, string name, string field, string path)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            throw Fail(path, Rules.EntryFields, $"tensor '{name}': {field} must be an array of integers");
        var values = new List<long>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long v))
                throw Fail(path, Rules.EntryFields, $"tensor '{name}': {field} must hold integers");
            if (values.Count >= 64) throw Fail(path, Rules.EntryFields, $"tensor '{name}': {field} has more than 64 entries");
            values.Add(v);
        }
        return values;
    }

    private static void ValidateLayout(List<TensorInfo> tensors, long bufferLength, string path)
    {
        tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long cursor = 0;
        foreach (var t in tensors)
        {
            if (t.Begin != cursor)
            {
                string what = t.Begin < cursor ? "overlaps the previous tensor" : "leaves a gap after the previous tensor";
                throw Fail(path, Rules.Layout, $"tensor '{t.Name}' starts at byte {t.Begin}, expected {cursor}: it {what}");
            }
            cursor = t.End;
        }
        if (cursor != bufferLength)
            throw Fail(path, Rules.BufferLength, $"tensors end at byte {cursor} but the data buffer holds {bufferLength} bytes");
    }

    private static SafetensorsFormatException Fail(string path, string rule, string detail) => new(path, rule, detail);
}
