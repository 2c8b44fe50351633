using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Parity;

/// <summary>
/// The step GEMM (16 rows per warp, up to 8 row groups a launch; weights streamed 16 bytes at a time) against the CPU
/// backend, every weight storage; and a batch's rows bit for bit as in launches of one block each (batch invariance).
/// </summary>
public sealed unsafe partial class KernelParity
{
    /// <summary>
    /// Shapes: one row to a full block; N not a multiple of 4 (masked columns); K one pass, several, and a partial pass; A
    /// rows wider than K; K split 2, 4 and 8 ways (splits with no pass of their own, idle warps past N, several row groups).
    /// </summary>
    internal static (int M, int N, int K, int Lda, int Group, int Store, bool Gelu, int Splits)[] StepShapes =>
    [
        (1, 96, 96, 96, 32, 0, false, 1), (16, 96, 96, 96, 64, 1, false, 1), (16, 384, 96, 96, 32, 0, true, 1), (5, 33, 72, 72, 32, 0, false, 1),
        (16, 501, 256, 256, 64, 1, true, 1), (3, 10, 520, 528, 32, 0, false, 1), (16, 1, 8, 8, 32, 1, false, 1), (7, 130, 1032, 1032, 256, 0, true, 1),
        (17, 96, 96, 96, 64, 0, false, 1), (40, 33, 72, 72, 128, 1, true, 1), (128, 20, 256, 256, 256, 0, false, 1),
        (16, 96, 1032, 1032, 128, 0, true, 4), (17, 33, 520, 528, 256, 1, false, 2), (1, 96, 96, 96, 64, 0, false, 2),
        (40, 20, 256, 256, 256, 1, true, 2), (5, 501, 2048, 2048, 256, 0, true, 8),
    ];

    /// <summary>The shape as the parity report names it.</summary>
    internal static string StepShapeName(int m, int n, int k, int lda, int group, int store, bool gelu, int splits) =>
        $"{m}x{n}x{k} lda {lda} g{group}{(splits > 1 ? $" K/{splits}" : "")}{(store == 1 ? " acc" : "")}{(gelu ? " gelu" : "")}";

    /// <summary>fp32 weights: equal to the CPU backend within fp32 rounding (the order of the sum differs); fp16/bf16 weights: equal to fp32 on the rounded weights.</summary>
    public ParityResult[] StepMatMul(int m, int n, int k, int lda, int group, int store, bool gelu, int splits)
    {
        var (a, dense) = StridedRows(m, k, lda);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var args = new MatMulArgs { M = m, N = n, K = k, Lda = lda, Ldc = n, Accumulate = store, Gelu = gelu ? 1 : 0, HasBias = 1, KSplits = splits };
        var launch = StepMatMulKernel.Launch(n, m, group, splits: splits);
        string shape = StepShapeName(m, n, k, lda, group, store, gelu, splits);

        var out32 = Upload(c);
        _f32.StepMatMul(_stream, launch, Upload(a).Cast<Float4>(), new F32Weights(Upload(w)), Upload(bias), out32, args, Off);
        var out16 = Upload(c);
        var half = w.Select(DeviceWeights<F16Weights>.ToHalf).ToArray();
        _f16.StepMatMul(_stream, launch, Upload(a).Cast<Float4>(), new F16Weights(Upload(half)), Upload(bias), out16, args, Off);
        var outBf = Upload(c);
        var bf = w.Select(DeviceWeights<BF16Weights>.ToBFloat16).ToArray();
        _bf16.StepMatMul(_stream, launch, Upload(a).Cast<Float4>(), new BF16Weights(Upload(bf)), Upload(bias), outBf, args, Off);
        // the same rows one block (≤ 16 rows) per launch: every bit must agree
        var blocks = Upload(c);
        var blockInput = Upload(a);
        for (int r = 0; r < m; r += StepMatMulKernel.MaxRows)
        {
            int rows = Math.Min(StepMatMulKernel.MaxRows, m - r);
            _f32.StepMatMul(_stream, StepMatMulKernel.Launch(n, rows, group, splits: splits), blockInput.SubView((long)r * lda, (long)rows * lda).Cast<Float4>(), new F32Weights(Upload(w)),
                Upload(bias), blocks.SubView((long)r * n, (long)rows * n), args with { M = rows }, Off);
        }
        var batched = Download(out32, m * n);
        int differing = Download(blocks, m * n).Where((x, i) => BitConverter.SingleToInt32Bits(x) != BitConverter.SingleToInt32Bits(batched[i])).Count();
        return
        [
            new("step matmul rows batched vs one block a launch", shape, differing, 0, $"{differing} values differ in some bit"),
            new("step matmul fp32", shape, Nmse.Of(Download(out32, m * n), CpuMatMul(dense, w, bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("step matmul fp16 weights vs fp32 on rounded weights", shape,
                Nmse.Of(Download(out16, m * n), CpuMatMul(dense, RoundToHalf(w), bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("step matmul bf16 weights vs fp32 on rounded weights", shape,
                Nmse.Of(Download(outBf, m * n), CpuMatMul(dense, w.Select(DeviceWeights<BF16Weights>.AsStored).ToArray(), bias, c, m, n, k, store, gelu)), Nmse.F32),
        ];
    }
    /// <summary>The step GEMM's "no norm" argument (its views are never read).</summary>
    private StepNorm Off => StepNorm.Off(Upload(new float[4]));

    /// <summary>
    /// The step GEMM with a LayerNorm folded in (<see cref="StepNorm"/>) against the CPU backend's LayerNorm then GEMM, on
    /// rows with a mean far from 0 (the centring's cancellation), every weight storage (fp16/bf16 against fp32 on the
    /// rounded weights); and a batch's rows bit for bit as in launches of one block each.
    /// </summary>
    public ParityResult[] StepMatMulNormed(int m, int n, int k, int lda, int group, int store, bool gelu, int splits)
    {
        var (a, _) = StridedRows(m, k, lda);
        for (int i = 0; i < a.Length; i++) a[i] = 2f + 3f * a[i];
        var gamma = Random(k, 5).Select(g => 1f + g).ToArray();
        var beta = Random(k, 6);
        var w = Random(n * k, 2);
        var bias = Random(n, 3);
        var c = Random(m * n, 4);
        var args = new MatMulArgs { M = m, N = n, K = k, Lda = lda, Ldc = n, Accumulate = store, Gelu = gelu ? 1 : 0, HasBias = 1, KSplits = splits };
        string shape = StepShapeName(m, n, k, lda, group, store, gelu, splits);
        var normed = new float[m * k];
        fixed (float* pa = a, pg = gamma, pb = beta, pn = normed)
            for (int r = 0; r < m; r++) Runtime.Cpu.LayerNorm.Row(pa + r * lda, pg, pb, pn + r * k, k);

        float[] Run<TW>(KernelSet<TW> kernels, TW weights, Func<float, float> stored, int rowsPerLaunch) where TW : struct, IWeightView
        {
            float[] sums, folded;
            fixed (float* pw = w, pbias = bias, pg = gamma, pb = beta)
                (sums, folded) = NormFolding.Fold([pw], [pbias], n, k, pg, pb, stored);
            var norm = new StepNorm { Enabled = 1, Gamma = Upload(gamma).Cast<Float4>(), ColumnSums = Upload(sums) };
            var output = Upload(c);
            var input = Upload(a);
            var foldedBias = Upload(folded);
            for (int r = 0; r < m; r += rowsPerLaunch)
            {
                int rows = Math.Min(rowsPerLaunch, m - r);
                kernels.StepMatMul(_stream, StepMatMulKernel.Launch(n, rows, group, splits: splits), input.SubView((long)r * lda, (long)rows * lda).Cast<Float4>(), weights, foldedBias,
                    output.SubView((long)r * n, (long)rows * n), args with { M = rows }, norm);
            }
            return Download(output, m * n);
        }

        var half = w.Select(DeviceWeights<F16Weights>.ToHalf).ToArray();
        var bf = w.Select(DeviceWeights<BF16Weights>.ToBFloat16).ToArray();
        var out32 = Run(_f32, new F32Weights(Upload(w)), DeviceWeights<F32Weights>.AsStored, m);
        var blocks = Run(_f32, new F32Weights(Upload(w)), DeviceWeights<F32Weights>.AsStored, StepMatMulKernel.MaxRows);
        var out16 = Run(_f16, new F16Weights(Upload(half)), DeviceWeights<F16Weights>.AsStored, m);
        var outBf = Run(_bf16, new BF16Weights(Upload(bf)), DeviceWeights<BF16Weights>.AsStored, m);
        int differing = blocks.Where((x, i) => BitConverter.SingleToInt32Bits(x) != BitConverter.SingleToInt32Bits(out32[i])).Count();
        return
        [
            new("step matmul + layernorm rows batched vs one block a launch", shape, differing, 0, $"{differing} values differ in some bit"),
            new("step matmul + layernorm fp32", shape, Nmse.Of(out32, CpuMatMul(normed, w, bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("step matmul + layernorm fp16 weights vs fp32 on rounded weights", shape,
                Nmse.Of(out16, CpuMatMul(normed, RoundToHalf(w), bias, c, m, n, k, store, gelu)), Nmse.F32),
            new("step matmul + layernorm bf16 weights vs fp32 on rounded weights", shape,
                Nmse.Of(outBf, CpuMatMul(normed, w.Select(DeviceWeights<BF16Weights>.AsStored).ToArray(), bias, c, m, n, k, store, gelu)), Nmse.F32),
        ];
    }
}
