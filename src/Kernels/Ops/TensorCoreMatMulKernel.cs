using ILGPU;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Ops;

/// <summary>
/// C = A·Wᵀ (+ bias, GELU, residual) on tensor cores, for prefill shapes (many rows): the main loop the tokenizer's
/// conv uses (<see cref="MmaTile"/>), A from the activations and W through the weight view, both rounded to fp16
/// as they are staged, fp32 accumulation. The result differs from the fp32 kernel by that rounding (the parity
/// suite's bounds; the logit error of a whole prefill is tested in DevicePrecisionTests).
/// The kernel's A-as-vectors argument is A as 16-byte vectors when A's view starts 16-byte aligned, else empty (scalar loads).
/// Grid: <see cref="MmaTile.Launch"/>(M, N, warps).
/// </summary>
public static class TensorCoreMatMulKernel
{
    public static void TensorCore<TW, TMma>(ArrayView<float> a, ArrayView<Float4> a4, TW w, ArrayView<float> bias, ArrayView<float> c, MatMulArgs args)
        where TW : struct, IWeightView where TMma : struct, IMma
    {
        MmaTile.GroupOrigin(args.N, out int m0, out int n0);
        var rows = new MatrixSource<F32Weights>
        {
            Matrix = new F32Weights { Data = a, Vectors = a4 }, Rows = args.M, Depth = args.K, Stride = args.Lda, Vectorized = a4.Length > 0,
        };
        var weights = new MatrixSource<TW> { Matrix = w, Rows = args.N, Depth = args.K, Stride = args.K, Vectorized = true };
        var acc = MmaTile.Multiply<TMma, MatrixSource<F32Weights>, MatrixSource<TW>>(rows, weights, args.K, m0, n0, args.N);
        MmaTile.LaneOrigin(args.N, m0, n0, out int row, out int column);
        Store(c, bias, args, row, column, acc.C00); Store(c, bias, args, row, column + 8, acc.C01);
        Store(c, bias, args, row, column + 16, acc.C02); Store(c, bias, args, row, column + 24, acc.C03);
        Store(c, bias, args, row + 16, column, acc.C10); Store(c, bias, args, row + 16, column + 8, acc.C11);
        Store(c, bias, args, row + 16, column + 16, acc.C12); Store(c, bias, args, row + 16, column + 24, acc.C13);
    }

    /// <summary>A's 16-byte view for the kernel: empty unless the view starts on a 16-byte boundary.</summary>
    public static ArrayView<Float4> Vectors(ArrayView<float> a) =>
        ((IContiguousArrayView)a).Index % 4 == 0 && a.Length >= 4 ? a.SubView(0, a.Length / 4 * 4).Cast<Float4>() : default;

    private static void Store(ArrayView<float> c, ArrayView<float> bias, MatMulArgs args, int row, int column, CFragment f)
    {
        args.Store(c, bias, row, column, f.R0);
        args.Store(c, bias, row, column + 1, f.R1);
        args.Store(c, bias, row + 8, column, f.R2);
        args.Store(c, bias, row + 8, column + 1, f.R3);
    }
}
