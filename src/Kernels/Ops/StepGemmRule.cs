using ILGPU;
using ILGPU.Runtime;

namespace NbpEngine.Kernels.Ops;

/// <summary>One measured launch of a step GEMM: for the GEMM (N, K) at <paramref name="Rows"/> rows, K split
/// <paramref name="Splits"/> ways with <paramref name="ColumnWarps"/> column quads a group.</summary>
public readonly record struct StepGemmEntry(int N, int K, int Splits, int Rows, int ColumnWarps);

/// <summary>
/// A launch rule for the step GEMM taken from measurements (the launch-shape sweep's proposal,
/// Profiling.StepGemmSweep.Rule) instead of <see cref="StepMatMulKernel.Launch"/>'s occupancy arithmetic: per GEMM
/// (N, K) one K split, whatever the rows (a row's sums depend on the split, so this keeps a sequence's bits independent
/// of its batch: a launch of more rows than the split allows is cut into several), and per row count the column warps
/// measured fastest (those of the nearest measured count with as many row groups). GEMMs it has no entry for launch as
/// they do without it. Used for measuring it end to end (DeviceSession.StepGemmRule) before any of it becomes a default.
/// </summary>
public sealed class StepGemmRule
{
    private readonly Dictionary<(int N, int K), StepGemmEntry[]> _entries;

    public StepGemmRule(IEnumerable<StepGemmEntry> entries)
    {
        _entries = entries.GroupBy(e => (e.N, e.K)).ToDictionary(g => g.Key, g => g.OrderBy(e => e.Rows).ToArray());
        foreach (var (shape, list) in _entries)
        {
            if (list.Select(e => e.Splits).Distinct().Count() != 1)
                throw new ArgumentException($"step GEMM {shape.N} x {shape.K}: K splits {string.Join(", ", list.Select(e => e.Splits).Distinct())}; one split for every row count keeps a row's bits independent of its batch");
            foreach (var e in list)
                if (!StepMatMulKernel.ValidSplits(e.Splits) || e.ColumnWarps < 1 || e.ColumnWarps * StepMatMulKernel.RowGroups(e.Rows) * e.Splits > StepMatMulKernel.MaxWarps)
                    throw new ArgumentException($"step GEMM {shape.N} x {shape.K} at {e.Rows} rows: {e.ColumnWarps} column warps with K split {e.Splits} is not a launch (at most {StepMatMulKernel.MaxWarps} warps a group)");
        }
    }

    /// <summary>The K split of GEMM (N, K): 1 when the rule has no entry for it.</summary>
    public int Splits(int n, int k) => _entries.TryGetValue((n, k), out var list) ? list[0].Splits : 1;

    /// <summary>Rows one launch of GEMM (N, K) takes at most: <see cref="StepMatMulKernel.MaxBatchRows"/> / its split.</summary>
    public int MaxRows(int n, int k) => StepMatMulKernel.MaxBatchRows / Splits(n, k);

    /// <summary>The launch of GEMM (N, K) for <paramref name="m"/> rows (at most <see cref="MaxRows"/>).</summary>
    public KernelConfig Launch(int n, int k, int m, int groupSize, int multiprocessors)
    {
        if (!_entries.TryGetValue((n, k), out var list)) return StepMatMulKernel.Launch(n, m, groupSize, multiprocessors);
        int splits = list[0].Splits, rowGroups = StepMatMulKernel.RowGroups(m);
        var alike = list.Where(e => StepMatMulKernel.RowGroups(e.Rows) == rowGroups).ToList();
        // a measured entry with as many row groups fits (the constructor checked its warps); otherwise as many column
        // warps as a group holds under the split, and Launch refuses rows the split cannot take
        return alike.Count > 0
            ? StepMatMulKernel.Config(n, m, alike.MinBy(e => Math.Abs(e.Rows - m)).ColumnWarps, splits)
            : StepMatMulKernel.Launch(n, m, StepMatMulKernel.MaxWarps * 32, multiprocessors: 1, splits);
    }
}
