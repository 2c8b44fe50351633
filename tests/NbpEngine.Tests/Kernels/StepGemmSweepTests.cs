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
    }
}
