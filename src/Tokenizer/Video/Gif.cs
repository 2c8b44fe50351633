using NbpEngine.Loader.IO;

namespace NbpEngine.Tokenizer.Video;

/// <summary>
/// Animated GIF (GIF89a) without ffmpeg or native code: one global palette of at most 256 colours for all frames, LZW
/// image data, a frame delay and an endless loop (NETSCAPE2.0). Frames with 256 colours or fewer in all are stored
/// exactly; otherwise the palette comes from a median cut over the frames' pixels and each pixel takes its nearest
/// palette colour (no dithering: predicted video frames are smooth and dithering noise hides motion).
/// </summary>
public static class Gif
{
    private const int MaxColours = 256, MaxCodes = 4096, SampledPixels = 1 << 16;

    /// <summary>Writes frames (each height x width x 3 bytes) as a looping GIF, under a temporary name renamed when complete.</summary>
    public static void WriteAnimation(string path, byte[][] frames, int width, int height, int fps)
    {
        if (frames.Length == 0) throw new ArgumentException("a GIF needs at least one frame", nameof(frames));
        if (width < 1 || height < 1 || width > 65535 || height > 65535) throw new ArgumentOutOfRangeException(nameof(width), $"{width}x{height}: GIF frames are 1..65535 pixels a side");
        if (fps < 1 || fps > 100) throw new ArgumentOutOfRangeException(nameof(fps), fps, "GIF frame rates are 1..100 (delays in 1/100 s)");
        foreach (var f in frames)
            if (f.Length != width * height * 3) throw new ArgumentException($"{f.Length} bytes for a {width}x{height} RGB frame", nameof(frames));
        var palette = BuildPalette(frames);
        OutputPath.WriteAtomically(path, file => Encode(file, frames, width, height, fps, palette));
    }

    private static void Encode(Stream file, byte[][] frames, int width, int height, int fps, Palette palette)
    {
        file.Write("GIF89a"u8);
        Write16(file, width); Write16(file, height);
        int bits = palette.Bits; // table size 2^bits
        file.WriteByte((byte)(0x80 | ((bits - 1) << 4) | (bits - 1))); // global table, colour resolution, table size
        file.WriteByte(0); file.WriteByte(0);                           // background index, aspect
        var table = new byte[3 << bits];
        palette.Colours.CopyTo(table, 0);
        file.Write(table);
        file.Write([0x21, 0xFF, 11]); file.Write("NETSCAPE2.0"u8); file.Write([3, 1, 0, 0, 0]); // loop forever
        int delay = (int)Math.Round(100.0 / fps, MidpointRounding.AwayFromZero);
        var indices = new byte[width * height];
        foreach (var frame in frames)
        {
            file.Write([0x21, 0xF9, 4, 0]); Write16(file, delay); file.Write([0, 0]); // graphic control: delay, no transparency
            file.WriteByte(0x2C); Write16(file, 0); Write16(file, 0); Write16(file, width); Write16(file, height); file.WriteByte(0);
            for (int p = 0; p < indices.Length; p++) indices[p] = palette.IndexOf(frame[p * 3], frame[p * 3 + 1], frame[p * 3 + 2]);
            int minimum = Math.Max(2, bits);
            file.WriteByte((byte)minimum);
            Lzw(file, indices, minimum);
        }
        file.WriteByte(0x3B);
    }

    private static void Write16(Stream s, int value)
    {
        s.WriteByte((byte)value);
        s.WriteByte((byte)(value >> 8));
    }

    /// <summary>GIF's LZW: codes grow from minimum + 1 bits to 12, a clear code when the table is full; data in sub-blocks of at most 255 bytes.</summary>
    private static void Lzw(Stream file, byte[] indices, int minimum)
    {
        int clear = 1 << minimum, end = clear + 1;
        var blocks = new SubBlocks(file);
        var table = new Dictionary<int, int>(MaxCodes); // (prefix code << 8 | next index) -> code
        int next = end + 1, width = minimum + 1;
        blocks.Code(clear, width);
        int prefix = indices[0];
        for (int i = 1; i < indices.Length; i++)
        {
            int key = prefix << 8 | indices[i];
            if (table.TryGetValue(key, out int code)) { prefix = code; continue; }
            blocks.Code(prefix, width);
            table[key] = next++;
            if (next > 1 << width && width < 12) width++; // the new code needs one more bit
            if (next == MaxCodes)
            {
                // the table is full: clear at once (no deferred clear, which old decoders mishandle)
                blocks.Code(clear, width);
                table.Clear();
                next = end + 1;
                width = minimum + 1;
            }
            prefix = indices[i];
        }
        blocks.Code(prefix, width);
        blocks.Code(end, width);
        blocks.Finish();
    }

    /// <summary>Packs codes least significant bit first into 255-byte sub-blocks, then the zero-length terminator.</summary>
    private sealed class SubBlocks(Stream file)
    {
        private readonly byte[] _block = new byte[255];
        private int _used, _bits;
        private uint _pending;

        public void Code(int code, int width)
        {
            _pending |= (uint)code << _bits;
            _bits += width;
            while (_bits >= 8)
            {
                Byte((byte)_pending);
                _pending >>= 8;
                _bits -= 8;
            }
        }

        private void Byte(byte b)
        {
            _block[_used++] = b;
            if (_used < _block.Length) return;
            Flush();
        }

        private void Flush()
        {
            if (_used == 0) return;
            file.WriteByte((byte)_used);
            file.Write(_block, 0, _used);
            _used = 0;
        }

        public void Finish()
        {
            if (_bits > 0) Byte((byte)_pending);
            _pending = 0; _bits = 0;
            Flush();
            file.WriteByte(0);
        }
    }

    /// <summary>At most 256 colours and the rule that maps a pixel to one.</summary>
    private sealed class Palette
    {
        public required byte[] Colours { get; init; }             // [count, 3]
        public required Dictionary<int, byte>? Exact { get; init; } // every colour of the frames, when they fit
        private readonly byte?[] _nearest = new byte?[1 << 15];     // 5-bit-per-channel cells, filled on first use

        public int Count => Colours.Length / 3;
        /// <summary>log2 of the colour table's size (GIF tables hold 2^bits entries, 2..256).</summary>
        public int Bits => Math.Max(1, (int)Math.Ceiling(Math.Log2(Math.Max(2, Count))));

        public byte IndexOf(byte r, byte g, byte b)
        {
            if (Exact is not null) return Exact[r << 16 | g << 8 | b];
            int cell = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3);
            return _nearest[cell] ??= Nearest((r & ~7) + 4, (g & ~7) + 4, (b & ~7) + 4);
        }

        private byte Nearest(int r, int g, int b)
        {
            int best = 0, bestDistance = int.MaxValue;
            for (int i = 0; i < Count; i++)
            {
                int dr = Colours[i * 3] - r, dg = Colours[i * 3 + 1] - g, db = Colours[i * 3 + 2] - b;
                int d = dr * dr + dg * dg + db * db;
                if (d < bestDistance) { bestDistance = d; best = i; }
            }
            return (byte)best;
        }
    }

    private static Palette BuildPalette(byte[][] frames)
    {
        var distinct = new Dictionary<int, byte>();
        foreach (var f in frames)
        {
            for (int p = 0; p < f.Length && distinct.Count <= MaxColours; p += 3)
                distinct.TryAdd(f[p] << 16 | f[p + 1] << 8 | f[p + 2], 0);
            if (distinct.Count > MaxColours) break;
        }
        if (distinct.Count <= MaxColours)
        {
            var colours = new byte[distinct.Count * 3];
            int i = 0;
            foreach (int rgb in distinct.Keys.Order().ToArray())
            {
                colours[i * 3] = (byte)(rgb >> 16); colours[i * 3 + 1] = (byte)(rgb >> 8); colours[i * 3 + 2] = (byte)rgb;
                distinct[rgb] = (byte)i++;
            }
            return new Palette { Colours = colours, Exact = distinct };
        }
        return new Palette { Colours = MedianCut(Sample(frames)), Exact = null };
    }

    /// <summary>Up to 65536 pixels spread evenly over all frames, as packed RGB.</summary>
    private static int[] Sample(byte[][] frames)
    {
        long total = frames.Sum(f => (long)f.Length / 3);
        long stride = Math.Max(1, total / SampledPixels);
        var sample = new List<int>((int)Math.Min(total, SampledPixels + 1));
        long at = 0;
        foreach (var f in frames)
            for (int p = 0; p < f.Length / 3; p++, at++)
                if (at % stride == 0) sample.Add(f[p * 3] << 16 | f[p * 3 + 1] << 8 | f[p * 3 + 2]);
        return [.. sample];
    }

    /// <summary>Splits the colour box with the most pixels along its widest channel at the median until there are 256; each box's mean is a colour.</summary>
    private static byte[] MedianCut(int[] pixels)
    {
        var boxes = new List<int[]> { pixels };
        while (boxes.Count < MaxColours)
        {
            int pick = -1, channel = 0;
            for (int i = 0, most = 1; i < boxes.Count; i++)
            {
                if (boxes[i].Length <= most) continue;
                int widest = WidestChannel(boxes[i], out int range);
                if (range == 0) continue;
                pick = i; channel = widest; most = boxes[i].Length;
            }
            if (pick < 0) break; // every box is one colour
            var box = boxes[pick];
            int shift = 16 - 8 * channel;
            Array.Sort(box, (x, y) => ((x >> shift) & 255).CompareTo((y >> shift) & 255));
            boxes[pick] = box[..(box.Length / 2)];
            boxes.Add(box[(box.Length / 2)..]);
        }
        var colours = new byte[boxes.Count * 3];
        for (int i = 0; i < boxes.Count; i++)
            for (int c = 0; c < 3; c++)
                colours[i * 3 + c] = (byte)Math.Round(boxes[i].Average(rgb => (rgb >> (16 - 8 * c)) & 255));
        return colours;
    }

    private static int WidestChannel(int[] box, out int range)
    {
        int best = 0;
        range = -1;
        for (int c = 0; c < 3; c++)
        {
            int shift = 16 - 8 * c, lo = 255, hi = 0;
            foreach (int rgb in box)
            {
                int v = (rgb >> shift) & 255;
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            if (hi - lo > range) { range = hi - lo; best = c; }
        }
        return best;
    }
}
