using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace NbpEngine.Tokenizer.Video;

/// <summary>
/// PNG without native dependencies: writes 8-bit RGB, reads 8-bit grey / grey+alpha / RGB / RGBA /
/// palette, non-interlaced (anything else is refused with a message naming the file and the field).
/// </summary>
public static class Png
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Writes rgb (height x width x 3 bytes, row-major) as an RGB PNG.</summary>
    public static void WriteRgb(string path, ReadOnlySpan<byte> rgb, int width, int height)
    {
        if (rgb.Length != width * height * 3) throw new ArgumentException($"{rgb.Length} bytes for a {width}x{height} RGB image");
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
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
        uint crc = Crc32(Crc32(0xFFFFFFFFu, head[4..]), data) ^ 0xFFFFFFFFu;
        Span<byte> sum = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(sum, crc);
        s.Write(sum);
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>CRC-32 (ISO-HDLC, as PNG uses) over <paramref name="data"/>, continuing from <paramref name="crc"/>.</summary>
    private static uint Crc32(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    /// <summary>Reads a PNG as RGB bytes (alpha dropped, grey expanded, palette resolved).</summary>
    public static (byte[] Rgb, int Width, int Height) ReadRgb(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 8 || !bytes.AsSpan(0, 8).SequenceEqual(Signature)) throw new InvalidDataException($"{path}: not a PNG file (bad signature)");
        int width = 0, height = 0, colorType = -1;
        byte[]? palette = null;
        using var idat = new MemoryStream();
        int at = 8;
        while (at + 12 <= bytes.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
            string type = Encoding.ASCII.GetString(bytes, at + 4, 4);
            if (length < 0 || at + 12L + length > bytes.Length) throw new InvalidDataException($"{path}: chunk '{type}' runs past the end of the file");
            var data = bytes.AsSpan(at + 8, length);
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    colorType = data[9];
                    if (data[8] != 8) throw new InvalidDataException($"{path}: bit depth {data[8]} is not supported (8 only)");
                    if (data[12] != 0) throw new InvalidDataException($"{path}: interlaced PNG is not supported");
                    if (width <= 0 || height <= 0 || (long)width * height > 1 << 28) throw new InvalidDataException($"{path}: image size {width}x{height} is out of range");
                    break;
                case "PLTE": palette = data.ToArray(); break;
                case "IDAT": idat.Write(data); break;
            }
            at += 12 + length;
            if (type == "IEND") break;
        }
        int channels = colorType switch
        {
            0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4,
            _ => throw new InvalidDataException($"{path}: PNG colour type {colorType} is not supported"),
        };
        if (colorType == 3 && palette is null) throw new InvalidDataException($"{path}: palette image without a PLTE chunk");
        int stride = width * channels;
        var pixels = new byte[(long)height * stride];
        idat.Position = 0;
        using (var z = new ZLibStream(idat, CompressionMode.Decompress))
        {
            var previous = new byte[stride];
            var row = new byte[stride];
            for (int y = 0; y < height; y++)
            {
                int filter = z.ReadByte();
                z.ReadExactly(row);
                Unfilter(filter, row, previous, channels, path);
                row.CopyTo(pixels, (long)y * stride);
                (previous, row) = (row, previous);
            }
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
