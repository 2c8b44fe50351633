using NbpEngine.Core;

namespace NbpEngine.Tokenizer;

/// <summary>Finite scalar quantisation (TOKENIZER.md) with a tokenizer's levels (<see cref="FsqLevels"/>).</summary>
public static class Fsq
{
    public const int Dimensions = FsqLevels.Dimensions;

    /// <summary>index -> code in [-1, 1]^6.</summary>
    public static void Code(FsqLevels levels, int index, Span<float> code)
    {
        if ((uint)index >= levels.CodebookSize) throw new ArgumentOutOfRangeException(nameof(index), index, $"FSQ index must be in [0, {levels.CodebookSize})");
        for (int d = 0; d < Dimensions; d++)
        {
            int half = levels.Levels(d) / 2;
            int digit = index / levels.Basis(d) % levels.Levels(d);
            code[d] = (digit - half) / (float)half;
        }
    }

    /// <summary>The pre-rounding value of dimension d: tanh(z + shift)·h - offset.</summary>
    public static float Bounded(FsqLevels levels, float z, int d)
    {
        int count = levels.Levels(d);
        float h = (count - 1) * (1 - 1e-3f) / 2;
        float offset = count % 2 == 0 ? 0.5f : 0f;
        float shift = MathF.Tan(offset / h);
        return MathF.Tanh(z + shift) * h - offset;
    }

    /// <summary>Continuous encoder output (6 values) -> index; rounding half to even, as torch.round.</summary>
    public static int Quantize(FsqLevels levels, ReadOnlySpan<float> z)
    {
        int index = 0;
        for (int d = 0; d < Dimensions; d++)
        {
            int digit = (int)MathF.Round(Bounded(levels, z[d], d), MidpointRounding.ToEven);
            index += (digit + levels.Levels(d) / 2) * levels.Basis(d);
        }
        return index;
    }
}
