using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;

using NbpEngine.Loader.IO;

namespace NbpEngine.Tokenizer.Video;

/// <summary>
/// PNG without native dependencies: writes 8-bit RGB, reads 8-bit grey / grey+alpha / RGB / RGBA /
/// palette, non-interlaced (anything else is refused with a message naming the file and the field).
/// </summary>
public static class Png
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Writes rgb (height x width x 3 bytes, row-major) as an RGB PNG, under a temporary name renamed when complete.</summary>
    public static void WriteRgb(string path, byte[] rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3) throw new ArgumentException($"{rgb.Length} bytes for a {width}x{height} RGB image");
        OutputPath.WriteAtomically(path, file => Encode(file, rgb, width, height));
    }

    private static void Encode(Stream file, ReadOnlySpan<byte> rgb, int width, int height)
    {
        file.Write(Signature);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], height);
        ihdr[8] = 8; ihdr[9] = 2; // 8-bit, truecolour
        Chunk(file, "IHDR", ihdr);
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
            for (int y = 0; y < height; y++)
            {
                z.WriteByte(0); // filter: none
                z.Write(rgb.Slice(y * width * 3, width * 3));
            }
        Chunk(file, "IDAT", raw.ToArray());
        Chunk(file, "IEND", []);
    }

    private static void Chunk(Stream s, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        Encoding.ASCII.GetBytes(type, head[4..]);
        s.Write(head);
        s.Write(data);
        Span<byte> sum = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(sum, ChunkCrc(head[4..], data));
        s.Write(sum);
    }

    /// <summary>CRC-32 (ISO-HDLC, as PNG uses) over a chunk's type and data.</summary>
    private static uint ChunkCrc(ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        var crc = new Crc32();
        crc.Append(type);
        crc.Append(data);
        return crc.GetCurrentHashAsUInt32();
    }

    /// <summary>Most pixels a frame may have (8192 x 8192): the decoded image is allocated before it is read.</summary>
    public const long MaxPixels = 1L << 26;

    /// <summary>
    /// Reads a PNG as RGB bytes (alpha dropped, grey expanded, palette resolved). Every defect (truncation,
    /// bad CRC, missing or misplaced chunks, corrupt compressed data, sizes out of range) is an
    /// <see cref="InvalidDataException"/> that names the file.
    /// </summary>
    public static (byte[] Rgb, int Width, int Height) ReadRgb(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return Decode(bytes, path);
    }

    private static (byte[] Rgb, int Width, int Height) Decode(byte[] bytes, string path)
    {
        if (bytes.Length < 8 || !bytes.AsSpan(0, 8).SequenceEqual(Signature)) throw new InvalidDataException($"{path}: not a PNG file (bad signature)");
        int width = 0, height = 0, colorType = -1;
        byte[]? palette = null;
        using var idat = new MemoryStream();
        int at = 8;
        bool ended = false;
        while (!ended)
        {
            if (at + 12 > bytes.Length) throw new InvalidDataException($"{path}: file ends at byte {bytes.Length} before the IEND chunk (truncated)");
            int length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            string type = Encoding.ASCII.GetString(bytes, at + 4, 4);
            if (length < 0 || at + 12L + length > bytes.Length) throw new InvalidDataException($"{path}: chunk '{type}' at byte {at} runs past the end of the file (truncated)");
            var data = bytes.AsSpan(at + 8, length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(at + 8 + length)), computed = ChunkCrc(bytes.AsSpan(at + 4, 4), data);
            if (stored != computed) throw new InvalidDataException($"{path}: chunk '{type}' at byte {at} has CRC {stored:x8}, its data give {computed:x8} (corrupt file)");
            if (at == 8 && type != "IHDR") throw new InvalidDataException($"{path}: the first chunk is '{type}', expected IHDR");
            switch (type)
            {
                case "IHDR":
                    if (length != 13) throw new InvalidDataException($"{path}: IHDR chunk has {length} bytes, expected 13");
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    colorType = data[9];
                    if (data[8] != 8) throw new InvalidDataException($"{path}: bit depth {data[8]} is not supported (8 only)");
                    if (data[10] != 0 || data[11] != 0) throw new InvalidDataException($"{path}: compression method {data[10]} / filter method {data[11]} are not PNG's (0)");
                    if (data[12] != 0) throw new InvalidDataException($"{path}: interlaced PNG is not supported");
                    if (width <= 0 || height <= 0 || (long)width * height > MaxPixels)
                        throw new InvalidDataException($"{path}: image size {width}x{height} is out of range (at most {MaxPixels} pixels)");
                    break;
                case "PLTE": palette = data.ToArray(); break;
                case "IDAT": idat.Write(data); break;
                case "IEND": ended = true; break;
            }
            at += 12 + length;
        }
        int channels = colorType switch
        {
            0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4,
            _ => throw new InvalidDataException($"{path}: PNG colour type {colorType} is not supported"),
        };
        if (colorType == 3 && palette is null) throw new InvalidDataException($"{path}: palette image without a PLTE chunk");
        if (idat.Length == 0) throw new InvalidDataException($"{path}: no IDAT chunk (no image data)");
        int stride = width * channels;
        var pixels = new byte[(long)height * stride];
        idat.Position = 0;
        var previous = new byte[stride];
        var row = new byte[stride];
        using (var z = new ZLibStream(idat, CompressionMode.Decompress))
            for (int y = 0; y < height; y++)
            {
                int filter;
                try
                {
                    filter = z.ReadByte();
                    if (filter < 0 || z.ReadAtLeast(row, stride, throwOnEndOfStream: false) < stride)
                        throw new InvalidDataException($"{path}: the compressed image data end at row {y} of {height} (truncated IDAT)");
                }
                catch (Exception e) when (e is IOException or InvalidDataException && !e.Message.StartsWith(path, StringComparison.Ordinal))
                {
                    // ZLibStream's own messages ("unsupported compression method") name no file
                    throw new InvalidDataException($"{path}: the compressed image data (IDAT) are corrupt at row {y} of {height} ({e.Message})");
                }
                Unfilter(filter, row, previous, channels, path);
                row.CopyTo(pixels, (long)y * stride);
                (previous, row) = (row, previous);
            }
        var rgb = new byte[(long)width * height * 3];
        for (long p = 0; p < (long)width * height; p++)
        {
            long s = p * channels;
            switch (colorType)
            {
                case 0: case 4: rgb[p * 3] = rgb[p * 3 + 1] = rgb[p * 3 + 2] = pixels[s]; break;
                case 3:
                    int i = pixels[s] * 3;
                    if (i + 2 >= palette!.Length) throw new InvalidDataException($"{path}: palette index {pixels[s]} out of range");
                    rgb[p * 3] = palette[i]; rgb[p * 3 + 1] = palette[i + 1]; rgb[p * 3 + 2] = palette[i + 2];
                    break;
                default: rgb[p * 3] = pixels[s]; rgb[p * 3 + 1] = pixels[s + 1]; rgb[p * 3 + 2] = pixels[s + 2]; break;
            }
        }
        return (rgb, width, height);
    }

    private static void Unfilter(int filter, byte[] row, byte[] previous, int bpp, string path)
    {
        for (int i = 0; i < row.Length; i++)
        {
            int a = i >= bpp ? row[i - bpp] : 0, b = previous[i], c = i >= bpp ? previous[i - bpp] : 0;
            row[i] = filter switch
            {
                0 => row[i],
                1 => (byte)(row[i] + a),
                2 => (byte)(row[i] + b),
                3 => (byte)(row[i] + (a + b) / 2),
                4 => (byte)(row[i] + Paeth(a, b, c)),
                _ => throw new InvalidDataException($"{path}: unknown PNG row filter {filter}"),
            };
        }
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}
