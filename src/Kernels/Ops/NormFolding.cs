namespace NbpEngine.Kernels.Ops;

/// <summary>
/// The per-matrix constants of a LayerNorm folded into the step GEMM after it (<see cref="StepNorm"/>), computed once
/// at upload in double precision from the weights as the device stores them (after rounding to fp16/bf16), so the
/// correction matches the products the kernel forms.
/// </summary>
public static unsafe class NormFolding
{
    /// <summary>
    /// For the stacked matrices (each [rowsEach, k], with their biases [rowsEach]): u_n = Σ_k γ_k·w_nk and
    /// b'_n = b_n + Σ_k β_k·w_nk, w as <paramref name="stored"/> rounds it.
    /// </summary>
    public static (float[] ColumnSums, float[] Bias) Fold(float*[] matrices, float*[] biases, long rowsEach, int k, float* gamma, float* beta, Func<float, float> stored)
    {
        long n = matrices.Length * rowsEach;
        var sums = new float[n];
        var folded = new float[n];
        Parallel.For(0, n, row =>
        {
            float* w = matrices[row / rowsEach] + row % rowsEach * k;
            double u = 0, b = biases[row / rowsEach][row % rowsEach];
            for (int i = 0; i < k; i++)
            {
                double x = stored(w[i]);
                u += gamma[i] * x;
                b += beta[i] * x;
            }
            sums[row] = (float)u;
            folded[row] = (float)b;
        });
        return (sums, folded);
    }
}
