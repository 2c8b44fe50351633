using System.Diagnostics;
using NbpEngine.Tests.Support;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Tests;

/// <summary>
/// The managed GIF writer: frames of up to 256 colours come back exactly (read by a decoder written here from the GIF89a
/// specification, and by ffmpeg where it is installed), more colours within a median cut's error; the file loops, keeps
/// the frame delay, and survives LZW table resets (large noisy frames).
/// </summary>
public class GifTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>Synthetic clip frames: filled squares of the demo palette moving over a dark background (few colours).</summary>
    private static byte[][] FewColours(int frames, int size)
    {
        byte[][] colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
        return Enumerable.Range(0, frames).Select(t =>
        {
            var rgb = new byte[size * size * 3];
            for (int p = 0; p < size * size; p++) { rgb[p * 3] = 20; rgb[p * 3 + 1] = 30; rgb[p * 3 + 2] = 10; }
            for (int o = 0; o < colours.Length; o++)
                for (int y = 0; y < 10; y++)
                    for (int x = 0; x < 10; x++)
                    {
                        int px = (5 + 3 * t + 13 * o + x) % size, py = (7 + 2 * t * o + y) % size;
                        colours[o].CopyTo(rgb, (py * size + px) * 3);
                    }
            return rgb;
        }).ToArray();
    }

    [Fact]
    public void FewColoursComeBackExactlyWithDelayAndLoop()
    {
        var frames = FewColours(17, 64);
        string path = _dir.File("clip.gif");
        Gif.WriteAnimation(path, frames, 64, 64, fps: 8);
        var (decoded, delays, loops) = GifReader.Read(File.ReadAllBytes(path));
        Assert.Equal(frames.Length, decoded.Length);
        for (int t = 0; t < frames.Length; t++) Assert.True(frames[t].SequenceEqual(decoded[t]), $"frame {t} differs");
        Assert.All(delays, d => Assert.Equal(13, d)); // 1/8 s in hundredths, rounded
        Assert.True(loops);
    }

    [Fact]
    public void ManyColoursAreQuantisedAndLzwResetsAreSound()
    {
        var rng = new Random(3);
        const int size = 96;
        var frames = Enumerable.Range(0, 4).Select(t =>
        {
            var rgb = new byte[size * size * 3];
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    int p = (y * size + x) * 3;
                    rgb[p] = (byte)(x * 255 / size); rgb[p + 1] = (byte)(y * 255 / size); rgb[p + 2] = (byte)((t * 60 + rng.Next(8)) & 255);
                }
            return rgb;
        }).ToArray();
        string path = _dir.File("gradient.gif");
        Gif.WriteAnimation(path, frames, size, size, fps: 25);
        var (decoded, delays, _) = GifReader.Read(File.ReadAllBytes(path));
        Assert.Equal(4, decoded.Length);
        Assert.All(delays, d => Assert.Equal(4, d));
        double error = 0;
        for (int t = 0; t < 4; t++)
            for (int i = 0; i < frames[t].Length; i++) error += Math.Abs(frames[t][i] - decoded[t][i]);
        error /= 4.0 * frames[0].Length;
        Assert.InRange(error, 0, 8); // 256 colours for ~37,000: mean error per channel under 8 of 255
    }

    [FactRequiringFfmpeg]
    public void FfmpegReadsTheSameFrames()
    {
        var frames = FewColours(9, 48);
        string path = _dir.File("clip.gif");
        Gif.WriteAnimation(path, frames, 48, 48, fps: 10);
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-" }) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        using var raw = new MemoryStream();
        process.StandardOutput.BaseStream.CopyTo(raw);
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, process.StandardError.ReadToEnd());
        Assert.Equal(frames.SelectMany(f => f).ToArray(), raw.ToArray());
    }

    [Fact]
    public void BadArgumentsAreRefusedAndNothingIsWritten()
    {
        string path = _dir.File("bad.gif");
        Assert.Throws<ArgumentException>(() => Gif.WriteAnimation(path, [], 4, 4, 8));
        Assert.Throws<ArgumentException>(() => Gif.WriteAnimation(path, [new byte[5]], 4, 4, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gif.WriteAnimation(path, [new byte[48]], 4, 4, 0));
        Assert.False(File.Exists(path));
    }
}

/// <summary>A GIF89a decoder from the specification (global palette, LZW, sub-blocks), independent of the writer's code.</summary>
internal static class GifReader
{
    public static (byte[][] Frames, List<int> Delays, bool Loops) Read(byte[] gif)
    {
        Assert.Equal("GIF89a", System.Text.Encoding.ASCII.GetString(gif, 0, 6));
        int width = gif[6] | gif[7] << 8, height = gif[8] | gif[9] << 8, flags = gif[10];
        Assert.True((flags & 0x80) != 0, "no global colour table");
        int tableSize = 1 << ((flags & 7) + 1), at = 13;
        var palette = gif.AsSpan(at, 3 * tableSize).ToArray();
        at += 3 * tableSize;
        var frames = new List<byte[]>();
        var delays = new List<int>();
        bool loops = false;
        while (true)
        {
            byte kind = gif[at++];
            if (kind == 0x3B) break;
            if (kind == 0x21)
            {
                byte label = gif[at++];
                var data = Blocks(gif, ref at);
                if (label == 0xF9) delays.Add(data[1] | data[2] << 8);
                if (label == 0xFF && System.Text.Encoding.ASCII.GetString(data, 0, 11) == "NETSCAPE2.0") loops = true;
                continue;
            }
            Assert.Equal(0x2C, kind);
            int w = gif[at + 4] | gif[at + 5] << 8, h = gif[at + 6] | gif[at + 7] << 8;
            Assert.Equal((width, height), (w, h));
            at += 9;
            int minimum = gif[at++];
            var indices = Lzw(Blocks(gif, ref at), minimum, w * h);
            var rgb = new byte[w * h * 3];
            for (int p = 0; p < w * h; p++) Array.Copy(palette, indices[p] * 3, rgb, p * 3, 3);
            frames.Add(rgb);
        }
        return ([.. frames], delays, loops);
    }

    private static byte[] Blocks(byte[] gif, ref int at)
    {
        var data = new List<byte>();
        for (int n = gif[at++]; n > 0; n = gif[at++])
        {
            data.AddRange(gif.AsSpan(at, n).ToArray());
            at += n;
        }
        return [.. data];
    }

    private static byte[] Lzw(byte[] data, int minimum, int count)
    {
        int clear = 1 << minimum, end = clear + 1;
        var table = new List<byte[]>();
        void Reset()
        {
            table.Clear();
            for (int i = 0; i < clear; i++) table.Add([(byte)i]);
            table.Add([]); table.Add([]);
        }
        Reset();
        int width = minimum + 1, bit = 0;
        var output = new List<byte>(count);
        byte[]? previous = null;
        while (true)
        {
            int code = 0;
            for (int b = 0; b < width; b++, bit++) code |= ((data[bit >> 3] >> (bit & 7)) & 1) << b;
            if (code == clear) { Reset(); width = minimum + 1; previous = null; continue; }
            if (code == end) break;
            byte[] entry;
            if (code < table.Count) entry = table[code];
            else
            {
                Assert.True(code == table.Count && previous is not null, $"LZW code {code} with {table.Count} entries");
                entry = [.. previous!, previous![0]];
            }
            output.AddRange(entry);
            if (previous is not null && table.Count < 4096) table.Add([.. previous, entry[0]]);
            if (table.Count == 1 << width && width < 12) width++;
            previous = entry;
        }
        Assert.Equal(count, output.Count);
        return [.. output];
    }
}
