using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Ops;

/// <summary>
/// A LayerNorm folded into the step GEMM that follows it (issue 12 item 4: two launches a layer fewer). With
/// LN(x)_k = (x_k − mean)·rstd·γ_k + β_k, each output is
/// <c>Σ_k LN(x)_k·w_nk + b_n = rstd·(Σ_k x_k·γ_k·w_nk − mean·u_n) + b'_n</c>, where u_n = Σ_k γ_k·w_nk and
/// b'_n = b_n + Σ_k β_k·w_nk are fixed per weight matrix (<see cref="NormFolding"/>, at upload). So the kernel
/// multiplies each streamed weight by γ_k (shared by the 16 rows: 32 multiplies a pass), computes every row's
/// mean and rstd from the raw rows it reads anyway, and corrects the sums in the epilogue; the β term rides in the
/// bias. <see cref="Enabled"/> 0: a plain GEMM (the views are then never read).
/// </summary>
public struct StepNorm
{
    public int Enabled;
    /// <summary>γ [K] as 16-byte vectors (K % 8 == 0 for the step GEMM).</summary>
    public ArrayView<Float4> Gamma;
    /// <summary>u [N]: Σ_k γ_k·w_nk over the weights as stored (rounded to their storage).</summary>
    public ArrayView<float> ColumnSums;

    /// <summary>No norm: the step GEMM reads A as it is. <paramref name="unused"/> is any valid view (never read).</summary>
    public static StepNorm Off(ArrayView<float> unused) => new() { Enabled = 0, Gamma = unused.SubView(0, 0).Cast<Float4>(), ColumnSums = unused };
}
