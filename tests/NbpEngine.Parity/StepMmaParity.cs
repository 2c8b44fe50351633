using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Parity;

/// <summary>
/// The tensor-core step GEMM (<see cref="StepMmaKernel"/>, A rounded to fp16 by <see cref="HalfRowsKernel"/>) against
/// the CPU backend on the same rounded operands, every weight storage; and a batch's rows bit for bit as in launches
/// of one block each (batch invariance).
/// </summary>
public sealed unsafe partial class KernelParity
{
    /// <summary>
    /// Shapes: one row to a full block; N not a multiple of 16 (a warp's second column fragment partly or wholly past N);
    /// K one slice, several, and a last slice only partly inside K; A rows wider than K; rows in 2 and 4 row warps, the
    /// upper 16 rows of a warp partly there; K split 2, 4 and 8 ways (splits with no slice of their own, idle warps past
    /// N); with and without the LayerNorm in front.
    /// </summary>
    internal static (int M, int N, int K, int Lda, int Group, int Store, bool Gelu, int Splits, bool Norm)[] MmaShapes =>
    [
        (1, 96, 96, 96, 64, 0, false, 1, false), (16, 96, 96, 96, 32, 1, false, 1, true), (16, 384, 96, 96, 256, 0, true, 1, false),
        (5, 45, 72, 80, 64, 0, false, 1, true), (16, 20, 256, 256, 128, 1, false, 2, false), (17, 40, 520, 520, 256, 0, true, 2, true),
        (40, 65, 256, 264, 256, 1, false, 1, false), (128, 20, 64, 64, 256, 0, false, 1, true), (16, 96, 1032, 1032, 128, 0, true, 4, true),
        (5, 501, 2048, 2048, 256, 1, true, 8, false), (32, 24, 512, 512, 256, 0, false, 8, true), (1, 8, 8, 8, 32, 0, false, 2, false),
    ];

    internal static string MmaShapeName(int m, int n, int k, int lda, int group, int store, bool gelu, int splits, bool norm) =>
        $"{StepShapeName(m, n, k, lda, group, store, gelu, splits)}{(norm ? " + layernorm" : "")}";

    /// <summary>
    /// fp16 weights: fp32 compute on the fp16-rounded rows and weights, up to the order of the sum (the NMSE bound of
    /// fp32), and within 1e-5 of fp32 on the unrounded rows (the cost of the rounding); fp32 and bf16 weights, which the
    /// kernel rounds to fp16 as it loads them, likewise against their rounded values.
    /// </summary>
    public ParityResult[] StepMma(int m, int n, int k, int lda, int group, int store, bool gelu, int splits, bool norm)
    {
        var (a, dense) = StridedRows(m, k, lda);
        if (norm) for (int i = 0; i < a.Length; i++) a[i] = 2f + 3f * a[i];
        var gamma = Random(k, 5).Select(x => 1f + x).ToArray();
        var beta = Random(k, 6);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var rows = dense;
        if (norm)
        {
            rows = new float[m * k];
            fixed (float* pa = a, pg = gamma, pb = beta, pn = rows)
                for (int r = 0; r < m; r++) Runtime.Cpu.LayerNorm.Row(pa + r * lda, pg, pb, pn + r * k, k);
        }
        var args = new MatMulArgs { N = n, K = k, Lda = k, Ldc = n, Accumulate = store, Gelu = gelu ? 1 : 0, HasBias = 1, KSplits = splits };
        string shape = MmaShapeName(m, n, k, lda, group, store, gelu, splits, norm);
        var input = Upload(a);
        var gammaView = Upload(gamma);
        var betaView = Upload(beta);

        // rows [0, m) through HalfRows then StepMma, rowsPerLaunch at a time
        float[] Run<TW>(KernelSet<TW> kernels, TW weights, int rowsPerLaunch) where TW : struct, IWeightView
        {
            var output = Upload(c);
            var halves = _accelerator.Allocate1D<Bits128>((long)m * k / 8);
            _buffers.Add(halves);
            for (int r = 0; r < m; r += rowsPerLaunch)
            {
                int count = Math.Min(rowsPerLaunch, m - r);
                var packed = halves.View.SubView((long)r * k / 8, (long)count * k / 8);
                kernels.HalfRows(_stream, new KernelConfig(count, group), input.SubView((long)r * lda, (long)count * lda), gammaView, betaView, packed,
                    new HalfRowsArgs { Rows = count, Width = k, Lda = lda, Normalize = norm ? 1 : 0 });
                kernels.StepMma(_stream, StepMmaKernel.Launch(n, count, group, splits: splits), packed, weights, Upload(bias), output.SubView((long)r * n, (long)count * n),
                    args with { M = count });
            }
            return Download(output, m * n);
        }

        var half = w.Select(DeviceWeights<F16Weights>.ToHalf).ToArray();
        var bf = w.Select(DeviceWeights<BF16Weights>.ToBFloat16).ToArray();
        var out16 = Run(_f16, new F16Weights(Upload(half)), m);
        var blocks = Run(_f16, new F16Weights(Upload(half)), StepMatMulKernel.MaxRows);
        var out32 = Run(_f32, new F32Weights(Upload(w)), m);
        var outBf = Run(_bf16, new BF16Weights(Upload(bf)), m);
        var roundedRows = RoundToHalf(rows);
        int differing = blocks.Where((x, i) => BitConverter.SingleToInt32Bits(x) != BitConverter.SingleToInt32Bits(out16[i])).Count();
        return
        [
            new("step mma rows batched vs one block a launch", shape, differing, 0, $"{differing} values differ in some bit"),
            new("step mma fp16 weights vs fp32 on rounded rows and weights", shape,
                Nmse.Of(out16, CpuMatMul(roundedRows, RoundToHalf(w), bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("step mma fp16 weights vs fp32 on unrounded rows", shape, Nmse.Of(out16, CpuMatMul(rows, RoundToHalf(w), bias, c, m, n, k, store, gelu)), 1e-5),
            new("step mma fp32 weights vs fp32 on rounded rows and weights", shape,
                Nmse.Of(out32, CpuMatMul(roundedRows, RoundToHalf(w), bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("step mma bf16 weights vs fp32 on rounded rows and weights", shape,
                Nmse.Of(outBf, CpuMatMul(roundedRows, RoundToHalf(w.Select(DeviceWeights<BF16Weights>.AsStored).ToArray()), bias, c, m, n, k, store, gelu)), Nmse.F32),
        ];
    }
}
