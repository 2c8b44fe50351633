using NbpEngine.Loader.IO;
using System.Diagnostics;
using NbpEngine.Core;

namespace NbpEngine.Tokenizer.Video;

/// <summary>
/// Frames in and out. Pixels are float [3, T, H, W] in [0, 1] (TOKENIZER.md). PNG folders need nothing
/// external; video files go through Debian's ffmpeg as a process (raw rgb24 on a pipe), with a clear
/// message when it is not installed.
/// </summary>
public static class VideoIO
{
    /// <summary>Video files <see cref="WriteVideo"/> writes (through ffmpeg); any other output is a folder of PNG frames.</summary>
    public static readonly IReadOnlyList<string> VideoExtensions = [".mp4", ".gif", ".apng"];

    public const string FfmpegMissing = "ffmpeg was not found on PATH; install it (apt-get install -y ffmpeg) to read video files or write MP4/APNG, or use a folder of PNG frames (or a .gif output)";

    public static bool FfmpegAvailable => FindOnPath("ffmpeg") is not null;

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, tool)).FirstOrDefault(File.Exists);

    /// <summary>
    /// Reads up to <paramref name="maxFrames"/> frames from a folder of PNGs (sorted by name) or a video file, scaled so the
    /// short side is <paramref name="size"/> and centre-cropped to size x size. Returns pixels [3, T, size, size].
    /// </summary>
    public static (float[] Pixels, int Frames) Read(string input, int size, int maxFrames)
    {
        var frames = Directory.Exists(input) ? ReadPngFolder(input, size, maxFrames) : ReadVideo(input, size, maxFrames);
        if (frames.Count == 0) throw new InvalidDataException($"{input}: no frames read");
        var pixels = new float[3L * frames.Count * size * size];
        long plane = (long)frames.Count * size * size;
        for (int t = 0; t < frames.Count; t++)
            for (int p = 0; p < size * size; p++)
                for (int c = 0; c < 3; c++) pixels[c * plane + (long)t * size * size + p] = frames[t][p * 3 + c] / 255f;
        return (pixels, frames.Count);
    }

    private static List<byte[]> ReadPngFolder(string folder, int size, int maxFrames)
    {
        var files = Directory.GetFiles(folder, "*.png").Order(StringComparer.Ordinal).Take(maxFrames).ToList();
        if (files.Count == 0) throw new InvalidDataException($"{folder}: no .png files");
        return files.Select(f =>
        {
            var (rgb, w, h) = Png.ReadRgb(f);
            return ScaleAndCrop(rgb, w, h, size);
        }).ToList();
    }

    /// <summary>Bilinear scale of the short side to <paramref name="size"/>, then a centre crop (for PNG input; ffmpeg does its own).</summary>
    public static byte[] ScaleAndCrop(byte[] rgb, int width, int height, int size)
    {
        double scale = (double)size / Math.Min(width, height);
        int sw = Math.Max(size, (int)Math.Round(width * scale)), sh = Math.Max(size, (int)Math.Round(height * scale));
        int x0 = (sw - size) / 2, y0 = (sh - size) / 2;
        var output = new byte[size * size * 3];
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                double sx = Math.Clamp((x + x0 + 0.5) / scale - 0.5, 0, width - 1), sy = Math.Clamp((y + y0 + 0.5) / scale - 0.5, 0, height - 1);
                int ix = (int)sx, iy = (int)sy, jx = Math.Min(ix + 1, width - 1), jy = Math.Min(iy + 1, height - 1);
                double fx = sx - ix, fy = sy - iy;
                for (int c = 0; c < 3; c++)
                {
                    double v = (1 - fy) * ((1 - fx) * rgb[(iy * width + ix) * 3 + c] + fx * rgb[(iy * width + jx) * 3 + c])
                             + fy * ((1 - fx) * rgb[(jy * width + ix) * 3 + c] + fx * rgb[(jy * width + jx) * 3 + c]);
                    output[(y * size + x) * 3 + c] = (byte)Math.Clamp(Math.Round(v), 0, 255);
                }
            }
        return output;
    }

    private static List<byte[]> ReadVideo(string path, int size, int maxFrames)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: input video not found", path);
        if (!FfmpegAvailable) throw new NbpInputException(FfmpegMissing);
        var psi = new ProcessStartInfo("ffmpeg")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "-v", "error", "-i", path, "-frames:v", maxFrames.ToString(), "-vf",
                     $"scale={size}:{size}:force_original_aspect_ratio=increase,crop={size}:{size}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-" })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var errors = process.StandardError.ReadToEndAsync();
        var frames = new List<byte[]>();
        var stdout = process.StandardOutput.BaseStream;
        while (true)
        {
            var frame = new byte[size * size * 3];
            int read = 0, n;
            while (read < frame.Length && (n = stdout.Read(frame, read, frame.Length - read)) > 0) read += n;
            if (read < frame.Length) break;
            frames.Add(frame);
        }
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidDataException($"{path}: ffmpeg failed: {errors.Result.Trim()}");
        return frames;
    }

    /// <summary>Pixels [3, T, H, W] -> T frames of RGB bytes.</summary>
    public static byte[][] ToRgbFrames(ReadOnlySpan<float> pixels, int frames, int height, int width)
    {
        long plane = (long)frames * height * width;
        var result = new byte[frames][];
        for (int t = 0; t < frames; t++)
        {
            var rgb = result[t] = new byte[height * width * 3];
            for (int p = 0; p < height * width; p++)
                for (int c = 0; c < 3; c++)
                    rgb[p * 3 + c] = (byte)Math.Round(Math.Clamp(pixels[(int)(c * plane + (long)t * height * width + p)], 0f, 1f) * 255f);
        }
        return result;
    }

    /// <summary>Writes frame_000.png ... into <paramref name="folder"/>.</summary>
    public static void WritePngFolder(string folder, byte[][] frames, int height, int width)
    {
        Directory.CreateDirectory(folder);
        for (int t = 0; t < frames.Length; t++) Png.WriteRgb(Path.Combine(folder, $"frame_{t:D3}.png"), frames[t], width, height);
    }

    /// <summary>One PNG with the frames side by side: a strip for a quick look.</summary>
    public static void WriteStrip(string path, byte[][] frames, int height, int width)
    {
        int total = width * frames.Length;
        var strip = new byte[height * total * 3];
        for (int t = 0; t < frames.Length; t++)
            for (int y = 0; y < height; y++)
                Array.Copy(frames[t], y * width * 3, strip, (y * total + t * width) * 3, width * 3);
        Png.WriteRgb(path, strip, total, height);
    }

    /// <summary>Whether writing <paramref name="path"/> needs ffmpeg: MP4 and APNG do, GIF is written here (<see cref="Gif"/>).</summary>
    public static bool NeedsFfmpeg(string path) => Path.GetExtension(path).ToLowerInvariant() != ".gif";

    /// <summary>Encodes frames to a GIF (managed, <see cref="Gif"/>), or to MP4 (H.264, yuv420p) or APNG via ffmpeg, by the file extension.</summary>
    public static void WriteVideo(string path, byte[][] frames, int height, int width, int fps)
    {
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (ext == ".gif")
        {
            Gif.WriteAnimation(path, frames, width, height, Math.Min(fps, 100));
            return;
        }
        if (!FfmpegAvailable) throw new NbpInputException(FfmpegMissing);
        var codec = ext switch
        {
            ".mp4" => new[] { "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart" },
            ".apng" or ".png" => new[] { "-f", "apng", "-plays", "0" },
            _ => throw new ArgumentException($"{path}: output must end in .mp4, .gif or .apng (or be a folder for PNG frames)"),
        };
        if (fps < 1) throw new ArgumentOutOfRangeException(nameof(fps), fps, "frame rate must be >= 1");
        // ffmpeg writes a temporary file (same extension, so it picks the same container), renamed when it succeeds
        OutputPath.WriteAtomically(path, (string temporary) =>
        {
            var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{width}x{height}", "-r", fps.ToString(), "-i", "-" }
                         .Concat(codec).Append(temporary))
                psi.ArgumentList.Add(a);
            using var process = Process.Start(psi)!;
            var errors = process.StandardError.ReadToEndAsync();
            using (var stdin = process.StandardInput.BaseStream)
                foreach (var f in frames) stdin.Write(f);
            process.WaitForExit();
            if (process.ExitCode != 0) throw new InvalidDataException($"{path}: ffmpeg failed: {errors.Result.Trim()}");
        });
    }
}
