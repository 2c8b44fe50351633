using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tests;

/// <summary>The packed outer-product GEMM against a double-precision loop, with tails in every dimension.</summary>
public unsafe class PackedGemmTests
{
    public static TheoryData<int, int, int, bool> Shapes
    {
        get
        {
            var data = new TheoryData<int, int, int, bool>();
            foreach (var (m, n, k) in new[] { (1, 1, 1), (7, 31, 17), (8, 32, 384), (9, 33, 385), (70, 100, 1000), (130, 64, 3) })
                foreach (bool accumulate in new[] { false, true })
                    data.Add(m, n, k, accumulate);
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void MatchesNaive(int m, int n, int k, bool accumulate)
    {
        var rng = new Random(m * 1000 + n + k);
        float[] R(int count) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var a = R(m * k);
        var w = R(n * k);
        var bias = R(n);
        var c = R(m * n);
        var result = c.ToArray();
        using var pool = new WorkerPool(2);
        fixed (float* pa = a, pw = w, pb = bias, pc = result)
        {
            using var packed = new PackedWeights(pw, n, k);
            new PackedMatMulJob().Run(pool, pa, m, k, packed, pb, pc, n, accumulate ? GemmStore.Accumulate : GemmStore.Overwrite);
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = bias[j] + (accumulate ? c[i * n + j] : 0);
                for (int p = 0; p < k; p++) expected += (double)a[i * k + p] * w[j * k + p];
                Assert.True(Math.Abs(result[i * n + j] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"[{i},{j}] {result[i * n + j]} vs {expected}");
            }
    }
}
