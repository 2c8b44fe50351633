using NbpEngine.Core;

namespace NbpEngine.Tokenizer;

/// <summary>Finite scalar quantisation with levels [8, 8, 8, 5, 5, 5] (64000 codes), TOKENIZER.md.</summary>
public static class Fsq
{
    public const int Dimensions = FsqLayout.Dimensions;
    public const int CodebookSize = FsqLayout.CodebookSize;

    /// <summary>index -> code in [-1, 1]^6.</summary>
    public static void Code(int index, Span<float> code)
    {
        if ((uint)index >= CodebookSize) throw new ArgumentOutOfRangeException(nameof(index), index, $"FSQ index must be in [0, {CodebookSize})");
        for (int d = 0; d < Dimensions; d++)
        {
            int half = FsqLayout.Levels(d) / 2;
            int digit = index / FsqLayout.Basis(d) % FsqLayout.Levels(d);
            code[d] = (digit - half) / (float)half;
        }
    }

    /// <summary>The pre-rounding value of dimension d: tanh(z + shift)·h - offset.</summary>
    public static float Bounded(float z, int d)
    {
        int levels = FsqLayout.Levels(d);
        float h = (levels - 1) * (1 - 1e-3f) / 2;
        float offset = levels % 2 == 0 ? 0.5f : 0f;
        float shift = MathF.Tan(offset / h);
        return MathF.Tanh(z + shift) * h - offset;
    }

    /// <summary>Continuous encoder output (6 values) -> index; rounding half to even, as torch.round.</summary>
    public static int Quantize(ReadOnlySpan<float> z)
    {
        int index = 0;
        for (int d = 0; d < Dimensions; d++)
        {
            int digit = (int)MathF.Round(Bounded(z[d], d), MidpointRounding.ToEven);
            index += (digit + FsqLayout.Levels(d) / 2) * FsqLayout.Basis(d);
        }
        return index;
    }
}
