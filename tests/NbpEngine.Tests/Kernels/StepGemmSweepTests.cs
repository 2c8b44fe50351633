using NbpEngine.Kernels;
using NbpEngine.Kernels.Profiling;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The step GEMM's launch-shape sweep (nbp-gpu-check --sweep-step-gemm) on the CPU accelerator: every group size it
/// tries gives the bits of the others with the same K split (a row's sums must not depend on the group), partial column
/// groups and two row groups included; split K stays within fp32 rounding of unsplit K; each gets a time.
/// </summary>
public class StepGemmSweepTests
{
    [Fact]
    public void EveryGroupSizeGivesTheSameBitsForItsSplit()
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        // 18 and 10 column quads: groups of 4 and 8 column warps have idle warps at the end; 17 rows are two row groups
        StepGemmShape[] shapes = [new("folded norm, GELU", 72, 256, FoldedNorm: true, Gelu: true), new("plain", 40, 512, FoldedNorm: false, Gelu: false)];
        var timings = StepGemmSweep.Measure(device, shapes, [1, 17], launches: 1, weightBytes: 0);

        // at most 8 warps a group: one row group takes (splits, column warps) 4 + 3 + 2 + 1 ways, two row groups 3 + 2 + 1
        Assert.Equal(2 * (10 + 6), timings.Count);
        Assert.All(timings, t => Assert.True(t.SameBitsAsSplit, $"{t.Shape.Name}, {t.Rows} rows, K/{t.Splits}, {t.ColumnWarps} column warps: bits differ from the split's first launch"));
        Assert.All(timings, t => Assert.InRange(t.DifferenceFromUnsplit, 0, t.Splits == 1 ? 0 : 1e-5));
        Assert.Contains(timings, t => t.Splits > 1 && t.DifferenceFromUnsplit > 0); // K = 512 split: another order of the sum
        Assert.All(timings, t => Assert.True(t.Microseconds > 0 && t.WeightGBps > 0, $"{t.Shape.Name}: {t.Microseconds} µs"));
        Assert.Equal(4, timings.Count(t => t.IsDefault));
        Assert.All(timings, t => Assert.Equal((t.Shape.N / 4 + t.ColumnWarps - 1) / t.ColumnWarps, t.Groups));
        Assert.All(timings, t => Assert.Equal(t.ColumnWarps * (t.Rows > 16 ? 2 : 1) * t.Splits * 32, t.GroupThreads));
        var table = StepGemmSweep.Table(timings).ToList();
        Assert.Equal(2 + timings.Count, table.Count);
        Assert.DoesNotContain(table, line => line.Contains("**no**"));
        var choices = StepGemmSweep.Choose(timings);
        Assert.Equal(2 * 2, choices.Count); // each shape at each row count
        Assert.All(choices, c => Assert.Single(choices.Where(o => o.Shape == c.Shape).Select(o => o.Splits).Distinct()));
    }

    /// <summary>
    /// The same sweep of the tensor-core step GEMM (16 columns a warp, 32 rows a row warp; each timing a rounding launch
    /// and the mma GEMM): the same bits for every group size of a split, splits within fp32 rounding of unsplit, one
    /// launch per shape and row count marked as the session's.
    /// </summary>
    [Fact]
    public void OnTensorCoresEveryGroupSizeGivesTheSameBitsForItsSplit()
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        // 5 and 3 column warps of 16: groups of 2, 4 and 8 have idle warps at the end; 33 rows are two row warps
        StepGemmShape[] shapes = [new("folded norm, GELU", 72, 256, FoldedNorm: true, Gelu: true), new("plain", 40, 512, FoldedNorm: false, Gelu: false)];
        var timings = StepGemmSweep.Measure(device, shapes, [1, 33], launches: 1, weightBytes: 0, tensorCores: true);

        // one row warp: (splits, column warps) 4 + 3 + 2 + 1 ways; two: splits 1, 2, 4 (8 takes 32 rows at most) 3 + 2 + 1
        Assert.Equal(2 * (10 + 6), timings.Count);
        Assert.All(timings, t => Assert.True(t.SameBitsAsSplit, $"{t.Shape.Name}, {t.Rows} rows, K/{t.Splits}, {t.ColumnWarps} column warps: bits differ from the split's first launch"));
        Assert.All(timings, t => Assert.InRange(t.DifferenceFromUnsplit, 0, t.Splits == 1 ? 0 : 1e-5));
        Assert.Equal(4, timings.Count(t => t.IsDefault));
        Assert.All(timings, t => Assert.Equal(((t.Shape.N + 15) / 16 + t.ColumnWarps - 1) / t.ColumnWarps, t.Groups));
        Assert.All(timings, t => Assert.Equal(t.ColumnWarps * (t.Rows > 32 ? 2 : 1) * t.Splits * 32, t.GroupThreads));
    }

    /// <summary>
    /// The rule the sweep proposes keeps one K split per GEMM across row counts (a row's bits depend on the split): the
    /// split whose fastest launches add up to the least, among those every row count can take, the smaller on a tie; then
    /// each row count's fastest column warps under it, beside today's launch.
    /// </summary>
    [Fact]
    public void TheProposedRuleSplitsEachGemmOneWayForEveryRowCount()
    {
        StepGemmShape a = new("a", 64, 1024, FoldedNorm: false, Gelu: false), b = new("b", 32, 512, FoldedNorm: true, Gelu: false);
        StepGemmTiming T(StepGemmShape shape, int rows, int splits, int warps, double us, bool today = false) =>
            new(shape, rows, splits, warps, 1, 32 * warps * splits, today, us, 1, true, 0);
        StepGemmTiming[] timings =
        [
            // a: K/8 is fastest at 1 row, but 32 rows (two row groups) cannot take it; K/2 adds up to the least (6 + 12)
            T(a, 1, 1, 1, 10), T(a, 1, 1, 2, 9, today: true), T(a, 1, 2, 1, 6), T(a, 1, 2, 2, 7), T(a, 1, 4, 1, 5), T(a, 1, 8, 1, 1),
            T(a, 32, 1, 1, 20, today: true), T(a, 32, 1, 2, 21), T(a, 32, 2, 1, 12), T(a, 32, 4, 1, 15),
            // b: unsplit and K/2 tie at 8: the smaller split, and its faster column warps at each row count
            T(b, 1, 1, 1, 3, today: true), T(b, 1, 1, 4, 2), T(b, 1, 2, 1, 4),
            T(b, 32, 1, 1, 6, today: true), T(b, 32, 2, 1, 4),
        ];
        var choices = StepGemmSweep.Choose(timings);
        Assert.Equal(
        [
            new StepGemmChoice(a, 2, 1, 1, 6, 9), new StepGemmChoice(a, 2, 32, 1, 12, 20),
            new StepGemmChoice(b, 1, 1, 4, 2, 3), new StepGemmChoice(b, 1, 32, 1, 6, 6),
        ], choices);
        var table = StepGemmSweep.ChoiceTable(choices, layers: 24).ToList();
        Assert.Equal(2 + 4 + 2, table.Count);
        Assert.EndsWith("| 72 |", table[2]);  // a at 1 row: (9 - 6) x 24
        Assert.Equal("| all | | | | 1 | | 8.0 | 12.0 | 96 |", table[6]);
        Assert.Equal("| all | | | | 32 | | 18.0 | 26.0 | 192 |", table[7]);
    }
}
