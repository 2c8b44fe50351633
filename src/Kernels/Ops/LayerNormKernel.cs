using ILGPU;

namespace NbpEngine.Kernels.Ops;

public struct LayerNormArgs
{
    public int Rows, Width;
}

/// <summary>
/// LayerNorm per row (eps 1e-5, biased variance, affine), two passes like the CPU reference.
/// Grid: one group per row, any power-of-two size up to <see cref="MaxGroupSize"/>.
/// </summary>
public static class LayerNormKernel
{
    public const int MaxGroupSize = 256;

    /// <param name="x">[rows, C]</param><param name="weight">[C]</param><param name="bias">[C]</param><param name="y">[rows, C]</param>
    public static void Normalize(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y, LayerNormArgs args)
    {
        long offset = (long)Grid.IdxX * args.Width;
        RowStatistics(x, offset, args.Width, out float mean, out float rstd);
        for (int c = Group.IdxX; c < args.Width; c += Group.DimX)
            y[offset + c] = (x[offset + c] - mean) * rstd * weight[c] + bias[c];
    }

    /// <summary>
    /// The mean and 1/sqrt(variance + 1e-5) of x[offset..offset+width), two passes over the row by the whole group (every
    /// thread gets both); what every device LayerNorm computes, in one order.
    /// </summary>
    internal static void RowStatistics(ArrayView<float> x, long offset, int width, out float mean, out float rstd)
    {
        var sums = SharedMemory.Allocate<float>(MaxGroupSize);
        var squares = SharedMemory.Allocate<float>(MaxGroupSize);
        int t = Group.IdxX;
        float sum = 0;
        for (int c = t; c < width; c += Group.DimX) sum += x[offset + c];
        mean = GroupSum(sums, sum) / width;
        float square = 0;
        for (int c = t; c < width; c += Group.DimX)
        {
            float d = x[offset + c] - mean;
            square += d * d;
        }
        rstd = 1f / ILGPU.Algorithms.XMath.Sqrt(GroupSum(squares, square) / width + 1e-5f);
    }

    /// <summary>
    /// Sum over the group with a single barrier: every thread adds all partials itself (broadcast reads), in the
    /// same order, so all get the same value; barriers are the expensive part on the CPU accelerator. Four
    /// interleaved sums (g mod 4) cut the dependent chain of adds from 256 to 64 + 3 on a 256-thread group.
    /// </summary>
    internal static float GroupSum(ArrayView<float> partial, float value)
    {
        partial[Group.IdxX] = value;
        Group.Barrier();
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int g = 0;
        for (; g + 4 <= Group.DimX; g += 4)
        {
            s0 += partial[g];
            s1 += partial[g + 1];
            s2 += partial[g + 2];
            s3 += partial[g + 3];
        }
        for (; g < Group.DimX; g++) s0 += partial[g];
        return (s0 + s1) + (s2 + s3);
    }
}
