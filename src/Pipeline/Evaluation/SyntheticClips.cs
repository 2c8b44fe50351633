using NbpEngine.Core;

namespace NbpEngine.Pipeline.Evaluation;

/// <summary>
/// The demo data contract of weights/demo/README.md, drawn here independently of tools/demo/clips.py (held-out clips
/// come from the text, not from the training code): 17 RGB frames of side R, a uniform dark background (each channel
/// 0-40), 1-3 filled circles or axis-aligned squares in one of six colours, size 0.12-0.24·R, constant velocity with
/// components in [-4, 4]·R/64 px/frame and speed at least R/64, reflecting off the edges, later objects over earlier
/// ones, a pixel inside when its centre is. Clip i of a seed depends only on (seed, i).
/// </summary>
public static class SyntheticClips
{
    public const int Frames = 17;
    private static readonly byte[][] Colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]];

    /// <summary>Clip <paramref name="index"/> of <paramref name="seed"/> at side <paramref name="side"/>.</summary>
    public static VideoClip Clip(int seed, int index, int side)
    {
        if (side < 8) throw new ArgumentOutOfRangeException(nameof(side), side, "clips are at least 8 pixels a side");
        // System.Random with an int seed repeats across runs; HashCode.Combine (used here before) is salted per process,
        // which made "the clips of seed 9001" a different set on every run
        var rng = new Random((int)(CounterRandom.Bits((ulong)(uint)seed, index, 0x5EED) >> 33));
        var background = new[] { (byte)rng.Next(41), (byte)rng.Next(41), (byte)rng.Next(41) };
        int count = 1 + rng.Next(3);
        var shapes = new (bool Circle, byte[] Colour, double Half, double[] Centre, double[] Velocity)[count];
        for (int o = 0; o < count; o++)
        {
            bool circle = rng.Next(2) == 1;
            var colour = Colours[rng.Next(Colours.Length)];
            double half = (0.12 + 0.12 * rng.NextDouble()) * side / 2;
            double[] centre = [half + (side - 2 * half) * rng.NextDouble(), half + (side - 2 * half) * rng.NextDouble()];
            double[] velocity;
            do velocity = [(rng.NextDouble() * 8 - 4) * side / 64, (rng.NextDouble() * 8 - 4) * side / 64];
            while (Math.Sqrt(velocity[0] * velocity[0] + velocity[1] * velocity[1]) < side / 64.0);
            shapes[o] = (circle, colour, half, centre, velocity);
        }
        long plane = (long)side * side;
        var pixels = new float[3 * Frames * plane];
        for (int t = 0; t < Frames; t++)
        {
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++)
                {
                    var rgb = background;
                    foreach (var s in shapes) // later objects over earlier ones
                    {
                        double dx = x + 0.5 - s.Centre[0], dy = y + 0.5 - s.Centre[1];
                        bool inside = s.Circle ? dx * dx + dy * dy <= s.Half * s.Half : Math.Abs(dx) <= s.Half && Math.Abs(dy) <= s.Half;
                        if (inside) rgb = s.Colour;
                    }
                    for (int c = 0; c < 3; c++) pixels[c * Frames * plane + t * plane + y * side + x] = rgb[c] / 255f;
                }
            foreach (var s in shapes) Move(s.Centre, s.Velocity, s.Half, side);
        }
        return new VideoClip(pixels, Frames, side, side);
    }

    /// <summary>One frame's motion, reflecting off the edges so the shape stays inside.</summary>
    private static void Move(double[] centre, double[] velocity, double half, int side)
    {
        for (int axis = 0; axis < 2; axis++)
        {
            centre[axis] += velocity[axis];
            if (centre[axis] - half < 0) { centre[axis] = 2 * half - centre[axis]; velocity[axis] = -velocity[axis]; }
            else if (centre[axis] + half > side) { centre[axis] = 2 * (side - half) - centre[axis]; velocity[axis] = -velocity[axis]; }
        }
    }
}
