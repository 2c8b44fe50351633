using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Tests;

/// <summary>Every PNG defect is an InvalidDataException naming the file, never EndOfStream or a zlib message without a name.</summary>
public class PngDefectTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>A valid 5x3 RGB PNG as chunks (type, data), so a test can break one and re-sign it.</summary>
    private static List<(string Type, byte[] Data)> Chunks()
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, 5);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), 3);
        ihdr[8] = 8;
        ihdr[9] = 2;
        using var raw = new MemoryStream();
        using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
            for (int y = 0; y < 3; y++)
            {
                z.WriteByte(0);
                z.Write(Enumerable.Range(0, 15).Select(i => (byte)(i * 17 + y)).ToArray());
            }
        return [("IHDR", ihdr), ("IDAT", raw.ToArray()), ("IEND", [])];
    }

    private static byte[] Assemble(IEnumerable<(string Type, byte[] Data)> chunks, bool sign = true)
    {
        using var file = new MemoryStream();
        file.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        foreach (var (type, data) in chunks)
        {
            var head = new byte[8];
            BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
            Encoding.ASCII.GetBytes(type, head.AsSpan(4));
            file.Write(head);
            file.Write(data);
            var crc = new Crc32();
            crc.Append(head.AsSpan(4));
            crc.Append(data);
            var sum = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(sum, sign ? crc.GetCurrentHashAsUInt32() : 0xDEADBEEF);
            file.Write(sum);
        }
        return file.ToArray();
    }

    public static TheoryData<string, string> Defects => new()
    {
        { "truncated-idat", "truncated IDAT" },
        { "missing-idat", "no IDAT chunk" },
        { "corrupt-deflate", "are corrupt at row 0" },
        { "short-ihdr", "IHDR chunk has 12 bytes, expected 13" },
        { "no-ihdr-first", "the first chunk is 'IDAT'" },
        { "bad-crc", "has CRC deadbeef" },
        { "cut-file", "truncated" },
        { "no-iend", "before the IEND chunk" },
        { "huge", "out of range" },
        { "bad-filter", "unknown PNG row filter 9" },
    };

    [Theory]
    [MemberData(nameof(Defects))]
    public void ADefectIsNamedWithTheFile(string defect, string reason)
    {
        var chunks = Chunks();
        var idat = chunks[1].Data;
        byte[] bytes = defect switch
        {
            "truncated-idat" => Assemble([chunks[0], ("IDAT", idat[..(idat.Length / 2)]), chunks[2]]),
            "missing-idat" => Assemble([chunks[0], chunks[2]]),
            "corrupt-deflate" => Assemble([chunks[0], ("IDAT", [0x78, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]), chunks[2]]),
            "short-ihdr" => Assemble([("IHDR", chunks[0].Data[..12]), chunks[1], chunks[2]]),
            "no-ihdr-first" => Assemble([chunks[1], chunks[0], chunks[2]]),
            "bad-crc" => Assemble(chunks, sign: false),
            "cut-file" => Assemble(chunks)[..40],
            "no-iend" => Assemble(chunks.Take(2)),
            "huge" => Assemble([("IHDR", Ihdr(100_000, 100_000)), chunks[1], chunks[2]]),
            _ => Assemble([chunks[0], ("IDAT", Deflate([9, .. new byte[15], 0, .. new byte[15], 0, .. new byte[15]])), chunks[2]]),
        };
        string path = _dir.File(defect + ".png");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => Png.ReadRgb(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void TheValidOneReads()
    {
        string path = _dir.File("ok.png");
        File.WriteAllBytes(path, Assemble(Chunks()));
        var (rgb, w, h) = Png.ReadRgb(path);
        Assert.Equal((5, 3), (w, h));
        Assert.Equal(17 * 4 + 2, rgb[(2 * 5 + 1) * 3 + 1]); // row 2, pixel 1, green: byte 4 of the row
    }

    private static byte[] Ihdr(int width, int height)
    {
        var ihdr = Chunks()[0].Data;
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        return ihdr;
    }

    private static byte[] Deflate(byte[] raw)
    {
        using var output = new MemoryStream();
        using (var z = new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true)) z.Write(raw);
        return output.ToArray();
    }
}
