using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Kernels.Profiling;

/// <summary>A step GEMM shape of the model: C[rows, N] = A[rows, K]·W[N, K]ᵀ + bias, with the LayerNorm before it folded in or not, GELU after or not.</summary>
public readonly record struct StepGemmShape(string Name, int N, int K, bool FoldedNorm, bool Gelu);

/// <summary>
/// One launch shape of the step GEMM for one model shape and row count: K split <paramref name="Splits"/> ways and
/// <paramref name="ColumnWarps"/> column quads a group (its warps are those times the row groups), its device time per
/// launch, the weight bytes it streamed per µs; whether its outputs equal bit for bit those of the first launch shape
/// with the same split (they must: a row's sums do not depend on the group), and how far they are from the unsplit
/// sums (largest difference over the largest output: another order of the same fp32 sum).
/// </summary>
public readonly record struct StepGemmTiming(StepGemmShape Shape, int Rows, int Splits, int ColumnWarps, int Groups, int GroupThreads, bool IsDefault,
    double Microseconds, double WeightGBps, bool SameBitsAsSplit, double DifferenceFromUnsplit);

/// <summary>
/// The sweep's answer for one GEMM at one row count under a K split that depends on the GEMM's (N, K) alone: the
/// fastest column warps with <paramref name="Splits"/>, against the launch <see cref="StepMatMulKernel.Launch"/> makes today.
/// </summary>
public readonly record struct StepGemmChoice(StepGemmShape Shape, int Splits, int Rows, int ColumnWarps, double Microseconds, double TodayMicroseconds);

/// <summary>
/// What the step GEMM's launch shape costs (Nsight Compute, 2026-12-01: the 64-thread groups of the C-wide GEMMs leave
/// one warp a scheduler, the 256-thread groups of the wide ones fit one an SM and run in 1.45 waves). For each shape
/// and row count, every group size <see cref="StepMatMulKernel.Launch"/> could pick (1, 2, 4, 8 column warps) with K
/// unsplit and split 2, 4 and 8 ways (<see cref="MatMulArgs.KSplits"/>; at most 8 warps a group), fp16
/// weights, timed over back-to-back launches that cycle through enough weight copies to miss the L2 cache (a step's
/// 24 layers do), so the rule in <see cref="StepMatMulKernel.Launch"/> can be chosen from measurements, not from the
/// occupancy arithmetic alone.
/// </summary>
public static class StepGemmSweep
{
    /// <summary>The K600 transformer's four step GEMMs (width 1536).</summary>
    public static IReadOnlyList<StepGemmShape> K600Shapes(int width = 1536) =>
    [
        new("q/k/v", 3 * width, width, FoldedNorm: true, Gelu: false),
        new("proj", width, width, FoldedNorm: false, Gelu: false),
        new("fc", 4 * width, width, FoldedNorm: true, Gelu: true),
        new("out", width, 4 * width, FoldedNorm: false, Gelu: false),
    ];

    /// <param name="launches">timed launches per launch shape (after one untimed)</param>
    /// <param name="weightBytes">the weight copies cycled through add up to at least this (more than the L2 cache)</param>
    /// <param name="tensorCores">
    /// time the tensor-core step GEMM instead (<see cref="StepMmaKernel"/>: a column warp is 16 columns, a row warp 32
    /// rows; each timed launch is the rounding of the rows, with the LayerNorm where the shape has one, then the mma
    /// GEMM, as a session runs them); "today's launch" is then the one <see cref="DeviceSession{TW}.TensorCoreSteps"/> makes
    /// </param>
    public static IReadOnlyList<StepGemmTiming> Measure(IlgpuDevice device, IReadOnlyList<StepGemmShape> shapes, IReadOnlyList<int> rowCounts,
        int launches, long weightBytes = 256L << 20, bool tensorCores = false)
    {
        var accelerator = device.Accelerator;
        var kernels = new KernelSet<F16Weights>(accelerator);
        using var stream = accelerator.CreateStream();
        var results = new List<StepGemmTiming>();
        var rng = new Random(1);
        foreach (var shape in shapes)
        {
            int maxRows = rowCounts.Max();
            bool Fits(int rows, int splits) => tensorCores ? StepMmaKernel.Fits(rows, shape.K, splits) : StepMatMulKernel.Fits(rows, shape.K, shape.K, splits);
            if (!Fits(maxRows, 1)) throw new ArgumentException($"the step GEMM cannot take {maxRows} rows of K = {shape.K}");
            long matrix = (long)shape.N * shape.K;
            int copies = (int)Math.Clamp((weightBytes + 2 * matrix - 1) / (2 * matrix), 1, 64);
            var buffers = new List<MemoryBuffer>();
            ArrayView<T> Upload<T>(T[] host) where T : unmanaged
            {
                var b = accelerator.Allocate1D(host);
                buffers.Add(b);
                return b.View;
            }
            float[] Uniform(long n, float scale) => Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();
            try
            {
                // one set of values in every copy: what matters is that the copies live at different addresses
                var values = Uniform(matrix, 0.02f).Select(DeviceWeights<F16Weights>.ToHalf).ToArray();
                var w = Enumerable.Range(0, copies).Select(_ => new F16Weights(Upload(values))).ToArray();
                var a = Upload(Uniform((long)maxRows * shape.K, 1f));
                var bias = Upload(Uniform(shape.N, 0.1f));
                var c = Upload(new float[(long)maxRows * shape.N]);
                var norm = shape.FoldedNorm
                    ? new StepNorm { Enabled = 1, Gamma = Upload(Uniform(shape.K, 1f)).Cast<Float4>(), ColumnSums = Upload(Uniform(shape.N, 1f)) }
                    : StepNorm.Off(bias);
                var output = new float[(long)maxRows * shape.N];
                var view = a.Cast<Float4>();
                var halves = tensorCores ? Upload(new Bits128[(long)maxRows * shape.K / 8]) : default;
                var gamma = tensorCores ? Upload(Uniform(shape.K, 1f)) : default;
                var beta = tensorCores ? Upload(Uniform(shape.K, 0.1f)) : default;
                int maxWarps = tensorCores ? StepMmaKernel.MaxWarps : StepMatMulKernel.MaxWarps;
                foreach (int rows in rowCounts)
                {
                    int defaultSplits = tensorCores ? StepMmaKernel.Splits(shape.N, shape.K, accelerator.NumMultiprocessors) : 1;
                    var chosen = tensorCores
                        ? StepMmaKernel.Launch(shape.N, rows, device.Shape.GroupSize, accelerator.NumMultiprocessors, defaultSplits)
                        : StepMatMulKernel.Launch(shape.N, rows, device.Shape.GroupSize, accelerator.NumMultiprocessors);
                    int rowGroups = tensorCores ? StepMmaKernel.RowWarps(rows) : StepMatMulKernel.RowGroups(rows);
                    int defaultWarps = chosen.GroupDim.X / 32 / rowGroups / defaultSplits;
                    float[]? unsplit = null;
                    float largest = 0;
                    foreach (int splits in new[] { 1, 2, 4, 8 }.Where(s => Fits(rows, s)))
                    {
                        var args = new MatMulArgs { M = rows, N = shape.N, K = shape.K, Lda = shape.K, Ldc = shape.N, HasBias = 1, Gelu = shape.Gelu ? 1 : 0, KSplits = splits };
                        var rounding = new HalfRowsArgs { Rows = rows, Width = shape.K, Lda = shape.K, Normalize = shape.FoldedNorm ? 1 : 0 };
                        float[]? reference = null;
                        foreach (int cw in new[] { 1, 2, 4, 8 }.Where(cw => cw * rowGroups * splits <= maxWarps))
                        {
                            var config = tensorCores ? StepMmaKernel.Config(shape.N, rows, cw, splits) : StepMatMulKernel.Config(shape.N, rows, cw, splits);
                            // one GEMM as a session runs it, reading weight copy i
                            void Run(int i)
                            {
                                if (!tensorCores)
                                {
                                    kernels.StepMatMul(stream, config, view, w[i], bias, c, args, norm);
                                    return;
                                }
                                kernels.HalfRows(stream, HalfRowsKernel.Launch(rows, device.Shape.GroupSize), a, gamma, beta, halves, rounding);
                                kernels.StepMma(stream, config, halves, w[i], bias, c, args);
                            }
                            Run(0);
                            c.CopyToCPU(stream, output);
                            stream.Synchronize();
                            var mine = output.AsSpan(0, rows * shape.N).ToArray();
                            reference ??= mine;
                            if (unsplit is null)
                            {
                                unsplit = mine;
                                largest = unsplit.Max(MathF.Abs);
                            }
                            var clock = Stopwatch.StartNew();
                            for (int i = 0; i < launches; i++) Run(i % copies);
                            stream.Synchronize();
                            double us = clock.Elapsed.TotalMicroseconds / launches;
                            float difference = mine.Zip(unsplit, (x, y) => MathF.Abs(x - y)).Max();
                            results.Add(new StepGemmTiming(shape, rows, splits, cw, config.GridDim.X, config.GroupDim.X, splits == defaultSplits && cw == defaultWarps, us,
                                2.0 * matrix / us / 1e3, mine.AsSpan().SequenceEqual(reference), largest > 0 ? difference / largest : difference));
                        }
                    }
                }
            }
            finally
            {
                foreach (var b in buffers) b.Dispose();
            }
        }
        return results;
    }

    /// <summary>
    /// A launch rule the timings support: for each GEMM one K split for every row count (a row's bits depend on the
    /// split, so a split chosen by row count would make a sequence's tokens depend on its batch), the one whose fastest
    /// launches add up to the least over the row counts (the smaller split on a tie), and under it each row count's
    /// fastest column warps. Splits some row count could not take (too many row groups) are not candidates.
    /// </summary>
    public static IReadOnlyList<StepGemmChoice> Choose(IReadOnlyList<StepGemmTiming> timings)
    {
        var choices = new List<StepGemmChoice>();
        foreach (var shape in timings.Select(t => t.Shape).Distinct())
        {
            var mine = timings.Where(t => t.Shape == shape).ToList();
            var rowCounts = mine.Select(t => t.Rows).Distinct().OrderBy(r => r).ToList();
            StepGemmTiming Fastest(int splits, int rows) => mine.Where(t => t.Splits == splits && t.Rows == rows).MinBy(t => t.Microseconds);
            int best = mine.Select(t => t.Splits).Distinct()
                .Where(s => rowCounts.All(r => mine.Any(t => t.Splits == s && t.Rows == r)))
                .OrderBy(s => rowCounts.Sum(r => Fastest(s, r).Microseconds)).ThenBy(s => s).First();
            foreach (int rows in rowCounts)
            {
                var fastest = Fastest(best, rows);
                var today = mine.Single(t => t.Rows == rows && t.IsDefault);
                choices.Add(new StepGemmChoice(shape, best, rows, fastest.ColumnWarps, fastest.Microseconds, today.Microseconds));
            }
        }
        return choices;
    }

    /// <summary>The choices as a launch rule a session can run with (<see cref="DeviceSession{TW}.StepGemmRule"/>).</summary>
    public static StepGemmRule Rule(IEnumerable<StepGemmChoice> choices) =>
        new(choices.Select(c => new StepGemmEntry(c.Shape.N, c.Shape.K, c.Splits, c.Rows, c.ColumnWarps)));

    /// <summary>
    /// <see cref="Choose"/>'s rule as a markdown table, with what it would save a step of <paramref name="layers"/> layers
    /// at each row count (each GEMM once a layer).
    /// </summary>
    public static IEnumerable<string> ChoiceTable(IReadOnlyList<StepGemmChoice> choices, int layers)
    {
        yield return $"| gemm | N | K | K splits (every row count) | rows | column warps | µs a launch | today's µs | saved a {layers}-layer step (µs) |";
        yield return "|---|---|---|---|---|---|---|---|---|";
        foreach (var c in choices)
            yield return $"| {c.Shape.Name} | {c.Shape.N} | {c.Shape.K} | {c.Splits} | {c.Rows} | {c.ColumnWarps} | {c.Microseconds:F1} | {c.TodayMicroseconds:F1} | " +
                         $"{(c.TodayMicroseconds - c.Microseconds) * layers:F0} |";
        foreach (var group in choices.GroupBy(c => c.Rows))
            yield return $"| all | | | | {group.Key} | | {group.Sum(c => c.Microseconds):F1} | {group.Sum(c => c.TodayMicroseconds):F1} | " +
                         $"{group.Sum(c => c.TodayMicroseconds - c.Microseconds) * layers:F0} |";
    }

    /// <summary>The timings as a markdown table, the default launch of each shape and row count marked.</summary>
    public static IEnumerable<string> Table(IEnumerable<StepGemmTiming> timings)
    {
        yield return "| gemm | N | K | rows | K splits | column warps | groups x threads | µs a launch | weight GB/s | today's launch | bits as the split's first | vs unsplit |";
        yield return "|---|---|---|---|---|---|---|---|---|---|---|---|";
        foreach (var t in timings)
            yield return $"| {t.Shape.Name} | {t.Shape.N} | {t.Shape.K} | {t.Rows} | {t.Splits} | {t.ColumnWarps} | {t.Groups} x {t.GroupThreads} | {t.Microseconds:F1} | " +
                         $"{t.WeightGBps:F0} | {(t.IsDefault ? "yes" : "")} | {(t.SameBitsAsSplit ? "yes" : "**no**")} | {t.DifferenceFromUnsplit:G2} |";
    }
}
