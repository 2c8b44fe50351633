using NbpEngine.Kernels;
using NbpEngine.Kernels.Profiling;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The step GEMM's launch-shape sweep (nbp-gpu-check --sweep-step-gemm) on the CPU accelerator: every group size it
/// tries gives the default launch's bits (a row's sums must not depend on the group), partial column groups and two row
/// groups included, and each gets a time.
/// </summary>
public class StepGemmSweepTests
{
    [Fact]
    public void EveryLaunchShapeGivesTheDefaultLaunchsBits()
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        // 18 and 10 column quads: groups of 4 and 8 column warps have idle warps at the end; 17 rows are two row groups
        StepGemmShape[] shapes = [new("folded norm, GELU", 72, 256, FoldedNorm: true, Gelu: true), new("plain", 40, 512, FoldedNorm: false, Gelu: false)];
        var timings = StepGemmSweep.Measure(device, shapes, [1, 17], launches: 1, weightBytes: 0);

        Assert.Equal(2 * (4 + 3), timings.Count); // 1, 2, 4, 8 column warps for one row group; 1, 2, 4 for two (8 warps at most)
        Assert.All(timings, t => Assert.True(t.SameAsDefault, $"{t.Shape.Name}, {t.Rows} rows, {t.ColumnWarps} column warps: bits differ from the default launch's"));
        Assert.All(timings, t => Assert.True(t.Microseconds > 0 && t.WeightGBps > 0, $"{t.Shape.Name}: {t.Microseconds} µs"));
        Assert.Equal(4, timings.Count(t => t.IsDefault));
        Assert.All(timings, t => Assert.Equal((t.Shape.N / 4 + t.ColumnWarps - 1) / t.ColumnWarps, t.Groups));
        Assert.All(timings, t => Assert.Equal(t.ColumnWarps * (t.Rows > 16 ? 2 : 1) * 32, t.GroupThreads));
        var table = StepGemmSweep.Table(timings).ToList();
        Assert.Equal(2 + timings.Count, table.Count);
        Assert.DoesNotContain(table, line => line.Contains("**no**"));
    }
}
