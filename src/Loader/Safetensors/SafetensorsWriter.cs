using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using NbpEngine.Loader.IO;

namespace NbpEngine.Loader.Safetensors;

/// <summary>One tensor's header entry: name, element type, shape, and its byte count in the buffer.</summary>
public sealed record SafetensorsEntry(string Name, TensorDType DType, long[] Shape, long Bytes);

/// <summary>
/// Writes safetensors files. The header is the JSON Python's <c>json.dumps(header, separators=(",", ":"))</c>
/// writes (ASCII only, non-ASCII as \uXXXX), metadata first and omitted when empty, tensors in the given order,
/// padded with spaces to a multiple of 8: so a file written here is byte-identical to the reference
/// converter's (tools/reference/safetensors_io.py).
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>Float32 tensors in one call (tests, small files).</summary>
    public static void Write(string path, IEnumerable<(string Name, long[] Shape, float[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        // through a temporary file: a run killed while writing a multi-GB random checkpoint must not leave one
        // that the next run finds and takes as complete
        OutputPath.WriteAtomically(path, file =>
        {
            file.Write(Header(list.Select(t => new SafetensorsEntry(t.Name, TensorDType.F32, t.Shape, 4L * t.Data.Length)).ToList(), metadata));
            foreach (var (_, _, data) in list) file.Write(MemoryMarshal.AsBytes(data.AsSpan()));
        });
    }

    /// <summary>The 8-byte length followed by the padded JSON header; the tensors' bytes follow it in <paramref name="entries"/> order.</summary>
    public static byte[] Header(IReadOnlyList<SafetensorsEntry> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new StringBuilder("{");
        if (metadata is { Count: > 0 })
        {
            json.Append("\"__metadata__\":{");
            json.AppendJoin(',', metadata.Select(kv => Quote(kv.Key) + ":" + Quote(kv.Value)));
            json.Append("},");
        }
        long offset = 0;
        foreach (var e in entries)
        {
            json.Append(Quote(e.Name)).Append(":{\"dtype\":").Append(Quote(e.DType.Name())).Append(",\"shape\":[")
                .AppendJoin(',', e.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))
                .Append(CultureInfo.InvariantCulture, $"],\"data_offsets\":[{offset},{offset + e.Bytes}]}},");
            offset += e.Bytes;
        }
        if (json[^1] == ',') json.Length--;
        json.Append('}');
        int padded = (json.Length + 7) / 8 * 8;
        json.Append(' ', padded - json.Length);
        var bytes = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)padded);
        Encoding.ASCII.GetBytes(json.ToString(), bytes.AsSpan(8));
        return bytes;
    }

    /// <summary>A JSON string as Python's json.dumps writes it with ensure_ascii (every character outside ' '..'~' escaped).</summary>
    private static string Quote(string text)
    {
        var s = new StringBuilder("\"");
        foreach (char c in text)
        {
            s.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                < ' ' or > '~' => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }
        return s.Append('"').ToString();
    }

    /// <summary>Encodes a header exactly as given (for tests that need malformed files).</summary>
    public static byte[] RawFile(string headerJson, ReadOnlySpan<byte> buffer)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + buffer.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        buffer.CopyTo(bytes.AsSpan(8 + header.Length));
        return bytes;
    }
}
