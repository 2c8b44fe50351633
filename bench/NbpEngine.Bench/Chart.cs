using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Bench;

/// <summary>
/// Frames/s against block size (log2 axis) as a PNG: this run in blue, the paper's Figure 7 in orange,
/// ticks labelled with a 3x5 digit font. No dependencies beyond the project's PNG writer.
/// </summary>
internal static class Chart
{
    private const int Width = 720, Height = 420, Left = 60, Right = 20, Top = 20, Bottom = 50;
    private static readonly string[] Digits =
    [
        "111101101101111", "010110010010111", "111001111100111", "111001111001111", "101101111001001",
        "111100111001111", "111100111101111", "111001001001001", "111101111101111", "111101111001111",
    ];

    public static void Write(string path, (int Block, double Fps)[] ours, (int Block, double Fps)[] paper)
    {
        var rgb = new byte[Width * Height * 3];
        Array.Fill(rgb, (byte)255);
        double maxFps = Math.Max(ours.Max(p => p.Fps), paper.Max(p => p.Fps)) * 1.1;
        double maxX = Math.Log2(Math.Max(ours.Max(p => p.Block), paper.Max(p => p.Block)));
        int X(double block) => Left + (int)(Math.Log2(block) / maxX * (Width - Left - Right));
        int Y(double fps) => Height - Bottom - (int)(fps / maxFps * (Height - Top - Bottom));
        // grid and ticks
        foreach (int block in new[] { 1, 2, 4, 8, 16, 32, 64, 128, 256 }.Where(b => Math.Log2(b) <= maxX))
        {
            Line(rgb, X(block), Top, X(block), Height - Bottom, (225, 225, 225));
            Text(rgb, block.ToString(), X(block) - 4, Height - Bottom + 8);
        }
        double step = NiceStep(maxFps / 5);
        for (double f = 0; f <= maxFps; f += step)
        {
            Line(rgb, Left, Y(f), Width - Right, Y(f), (225, 225, 225));
            Text(rgb, f.ToString(step < 1 ? "0.0" : "0"), 8, Y(f) - 3);
        }
        Line(rgb, Left, Height - Bottom, Width - Right, Height - Bottom, (0, 0, 0));
        Line(rgb, Left, Top, Left, Height - Bottom, (0, 0, 0));
        Series(rgb, paper, X, Y, (230, 120, 20));
        Series(rgb, ours, X, Y, (30, 90, 200));
        Png.WriteRgb(path, rgb, Width, Height);
    }

    private static double NiceStep(double raw)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        return new[] { 1, 2, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw);
    }

    private static void Series(byte[] rgb, (int Block, double Fps)[] points, Func<double, int> x, Func<double, int> y, (byte, byte, byte) color)
    {
        var sorted = points.OrderBy(p => p.Block).ToArray();
        for (int i = 1; i < sorted.Length; i++)
            Line(rgb, x(sorted[i - 1].Block), y(sorted[i - 1].Fps), x(sorted[i].Block), y(sorted[i].Fps), color, thick: true);
        foreach (var p in sorted)
            for (int dy = -3; dy <= 3; dy++)
                for (int dx = -3; dx <= 3; dx++) Set(rgb, x(p.Block) + dx, y(p.Fps) + dy, color);
    }

    private static void Line(byte[] rgb, int x0, int y0, int x1, int y1, (byte, byte, byte) color, bool thick = false)
    {
        int steps = Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0)) + 1;
        for (int i = 0; i <= steps; i++)
        {
            int x = x0 + (x1 - x0) * i / steps, y = y0 + (y1 - y0) * i / steps;
            Set(rgb, x, y, color);
            if (thick) { Set(rgb, x + 1, y, color); Set(rgb, x, y + 1, color); }
        }
    }

    /// <summary>Digits and a decimal point.</summary>
    private static void Text(byte[] rgb, string text, int x, int y)
    {
        foreach (char ch in text)
        {
            if (ch == '.')
            {
                for (int s = 0; s < 4; s++) Set(rgb, x + s % 2, y + 8 + s / 2, (60, 60, 60));
                x += 4;
                continue;
            }
            if (ch is >= '0' and <= '9')
                for (int r = 0; r < 5; r++)
                    for (int c = 0; c < 3; c++)
                        if (Digits[ch - '0'][r * 3 + c] == '1')
                            for (int s = 0; s < 4; s++) Set(rgb, x + c * 2 + s % 2, y + r * 2 + s / 2, (60, 60, 60));
            x += 8;
        }
    }

    private static void Set(byte[] rgb, int x, int y, (byte R, byte G, byte B) color)
    {
        if (x < 0 || y < 0 || x >= Width || y >= Height) return;
        int at = (y * Width + x) * 3;
        rgb[at] = color.R; rgb[at + 1] = color.G; rgb[at + 2] = color.B;
    }
}
