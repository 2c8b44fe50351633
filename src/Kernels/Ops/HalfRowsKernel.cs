using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Ops;

public struct HalfRowsArgs
{
    /// <summary>Rows of Width values, Lda apart in the input; Width % 8 == 0.</summary>
    public int Rows, Width, Lda;
    /// <summary>1: LayerNorm each row first (γ, β; eps 1e-5, biased variance, as <see cref="LayerNormKernel"/>).</summary>
    public int Normalize;
}

/// <summary>
/// A step's rows as fp16, for the tensor-core step GEMM (<see cref="StepMmaKernel"/>): row r of x (LayerNormed first
/// when asked, with the statistics every device LayerNorm computes) rounded to nearest even, 8 values to a 16-byte
/// unit, rows Width / 8 units apart. The rounding is the instruction's own (<see cref="IMma.Pack"/>: cvt.rn.f16x2 on
/// CUDA), done once per row here rather than by each of the GEMM's column warps.
/// Grid: <see cref="Launch"/>, one group per row.
/// </summary>
public static class HalfRowsKernel
{
    /// <summary>The launch for <paramref name="rows"/> rows on a device whose row kernels use <paramref name="groupSize"/> threads.</summary>
    public static KernelConfig Launch(int rows, int groupSize) => new(rows, Math.Min(groupSize, LayerNormKernel.MaxGroupSize));

    /// <param name="x">[Rows, Lda]</param><param name="gamma">[Width] (read only if Normalize)</param>
    /// <param name="beta">[Width] (read only if Normalize)</param><param name="y">[Rows, Width / 8]</param>
    public static void Pack<TMma>(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<Bits128> y, HalfRowsArgs args)
        where TMma : struct, IMma
    {
        var mma = default(TMma);
        long offset = (long)Grid.IdxX * args.Lda;
        float mean = 0f, rstd = 1f;
        if (args.Normalize != 0) LayerNormKernel.RowStatistics(x, offset, args.Width, out mean, out rstd);
        int units = args.Width / 8;
        for (int u = Group.IdxX; u < units; u += Group.DimX)
        {
            long at = offset + 8L * u;
            int k = 8 * u;
            y[(long)Grid.IdxX * units + u] = new Bits128
            {
                X = mma.Pack(Value(x, gamma, beta, args, at, k, mean, rstd), Value(x, gamma, beta, args, at + 1, k + 1, mean, rstd)),
                Y = mma.Pack(Value(x, gamma, beta, args, at + 2, k + 2, mean, rstd), Value(x, gamma, beta, args, at + 3, k + 3, mean, rstd)),
                Z = mma.Pack(Value(x, gamma, beta, args, at + 4, k + 4, mean, rstd), Value(x, gamma, beta, args, at + 5, k + 5, mean, rstd)),
                W = mma.Pack(Value(x, gamma, beta, args, at + 6, k + 6, mean, rstd), Value(x, gamma, beta, args, at + 7, k + 7, mean, rstd)),
            };
        }
    }

    /// <summary>x[at] as the GEMM should see it: LayerNormed like <see cref="LayerNormKernel.Normalize"/> when asked.</summary>
    private static float Value(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, HalfRowsArgs args, long at, int k, float mean, float rstd) =>
        args.Normalize != 0 ? (x[at] - mean) * rstd * gamma[k] + beta[k] : x[at];
}
