using System.Diagnostics;
using System.Runtime.InteropServices;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Bench;

/// <summary>The machine's own ceilings, measured by the same command that is judged against them.</summary>
internal static unsafe class Machine
{
    /// <summary>Memory bandwidth (read + write bytes per second) of a multi-threaded 1 GiB copy.</summary>
    public static double CopyBandwidth(int threads)
    {
        const long count = 1L << 28;
        float* a = (float*)NativeMemory.AlignedAlloc((nuint)(count * 4), 64), b = (float*)NativeMemory.AlignedAlloc((nuint)(count * 4), 64);
        try
        {
            NativeMemory.Fill(a, (nuint)(count * 4), 1);
            NativeMemory.Fill(b, (nuint)(count * 4), 2);
            using var pool = new WorkerPool(threads);
            var copy = new CopyJob(a, b, count, 64);
            pool.Run(copy, 64);
            double best = 0;
            for (int i = 0; i < 3; i++)
            {
                var clock = Stopwatch.StartNew();
                pool.Run(copy, 64);
                best = Math.Max(best, 2.0 * count * 4 / clock.Elapsed.TotalSeconds);
            }
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
        }
    }

    private sealed class CopyJob(float* source, float* destination, long count, int tasks) : IParallelWork
    {
        public void Execute(int task, int worker)
        {
            long chunk = count / tasks;
            Buffer.MemoryCopy(source + task * chunk, destination + task * chunk, chunk * 4, chunk * 4);
        }
    }

    /// <summary>Achievable fp32 FLOP/s: the packed GEMM on a 1024 x 1536 x 1536 product, best of three.</summary>
    public static double GemmPeak(int threads)
    {
        const int m = 1024, n = 1536, k = 1536;
        var rng = new Random(1);
        var a = new float[m * k];
        var w = new float[n * k];
        for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble();
        for (int i = 0; i < w.Length; i++) w[i] = (float)rng.NextDouble();
        var c = new float[m * n];
        using var pool = new WorkerPool(threads);
        double best = 0;
        fixed (float* pa = a, pw = w, pc = c)
        {
            using var packed = new PackedWeights(pw, n, k);
            var job = new PackedMatMulJob();
            job.Run(pool, pa, m, k, packed, null, pc, n, GemmStore.Overwrite);
            for (int i = 0; i < 3; i++)
            {
                var clock = Stopwatch.StartNew();
                job.Run(pool, pa, m, k, packed, null, pc, n, GemmStore.Overwrite);
                best = Math.Max(best, 2.0 * m * n * k / clock.Elapsed.TotalSeconds);
            }
        }
        return best;
    }
}
