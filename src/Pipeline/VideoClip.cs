using NbpEngine.Core;
using NbpEngine.Tokenizer;
using NbpEngine.Tokenizer.Video;

namespace NbpEngine.Pipeline;

/// <summary>
/// Frames as the tokenizer takes and gives them: float32 [3, Frames, Height, Width] in [0, 1], channel planes
/// first (TOKENIZER.md).
/// </summary>
public sealed record VideoClip(float[] Pixels, int Frames, int Height, int Width)
{
    /// <summary>
    /// Reads a PNG folder or a video file (via ffmpeg), each frame scaled on its short side to
    /// <paramref name="size"/> and centre-cropped. <paramref name="frames"/> null: the most frames the input has that
    /// fit 1 + 4k (the tokenizer's causal layout), at most <see cref="ModelConfig.MaxSequenceLength"/>; given: exactly
    /// that many, or an error naming what the input has.
    /// </summary>
    public static VideoClip Read(string input, int size, int? frames = null)
    {
        if (!ModelConfig.IsValidResolution(size))
            throw new ArgumentOutOfRangeException(nameof(size), size, $"frame size must be a multiple of {ModelConfig.SpatialFactor} in [{ModelConfig.SpatialFactor}, {ModelConfig.MaxResolution}]");
        if (frames is { } wanted) VideoTokenizer.LatentFrames(wanted); // 1 + 4k, or the tokenizer's own error
        var (pixels, read) = VideoIO.Read(input, size, frames ?? ModelConfig.MaxSequenceLength);
        if (frames is { } n && read != n) throw new InvalidDataException($"{input}: {read} frames available, {n} needed");
        var clip = new VideoClip(pixels, read, size, size);
        return clip.First(1 + (read - 1) / 4 * 4);
    }

    /// <summary>The first <paramref name="count"/> frames (a copy unless that is all of them).</summary>
    public VideoClip First(int count)
    {
        if (count < 1 || count > Frames) throw new ArgumentOutOfRangeException(nameof(count), count, $"the clip has {Frames} frames");
        if (count == Frames) return this;
        long plane = (long)Height * Width, from = Frames * plane, to = count * plane;
        var pixels = new float[3 * to];
        for (int c = 0; c < 3; c++) Array.Copy(Pixels, c * from, pixels, c * to, to);
        return new VideoClip(pixels, count, Height, Width);
    }

    /// <summary>Interleaved 8-bit RGB per frame, for PNG and video writers.</summary>
    public byte[][] ToRgbFrames() => VideoIO.ToRgbFrames(Pixels, Frames, Height, Width);
}
