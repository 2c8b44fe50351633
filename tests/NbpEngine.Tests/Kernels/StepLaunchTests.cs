namespace NbpEngine.Tests.Kernels;

/// <summary>The step GEMM's launch keeps every multiprocessor streaming: smaller groups when columns are few; every row group of a column quad in one group.</summary>
public class StepLaunchTests
{
    [Theory]
    [InlineData(1536, 16, 256, 132, 192, 64)]    // 384 warps: groups of 2 warps -> 192 groups on 132 SMs
    [InlineData(64000, 16, 256, 132, 2000, 256)] // the head: plenty of columns, full groups
    [InlineData(6144, 16, 256, 132, 192, 256)]
    [InlineData(96, 16, 32, 1, 24, 32)]          // ILGPU's CPU accelerator shape
    [InlineData(5, 1, 256, 132, 2, 32)]          // fewer warps than SMs: single-warp groups
    [InlineData(1536, 32, 256, 132, 192, 128)]   // two blocks (CFG, a batch of 2): both row groups of 2 column quads a group
    [InlineData(64000, 128, 256, 132, 16000, 256)] // 8 blocks: a group is the 8 row groups of one column quad
    public void GroupsShrinkUntilEverySmHasOne(int n, int m, int groupSize, int sms, int groups, int threads)
    {
        var launch = NbpEngine.Kernels.Ops.StepMatMulKernel.Launch(n, m, groupSize, sms);
        Assert.Equal((groups, threads), (launch.GridDim.X, launch.GroupDim.X));
    }

    /// <summary>
    /// The fused layer launch at K600's shapes on an H100/H200 (132 SMs, C = 1536, 16 heads): one group size for all
    /// phases (what a 2C-wide step GEMM would get), and the groups of each phase, as bench/RESULTS.md's estimate uses them.
    /// </summary>
    [Theory]
    [InlineData(1, 16, 128, 288, 0, 192, 96, 384, 96)]  // one block at position 1024 (1040 keys: 33 chunks of 32)
    [InlineData(2, 16, 256, 288, 576, 192, 96, 384, 96)] // two blocks (guidance's streams): both row groups of 4 column quads a group
    public void AFusedK600LayerHasOneGroupSizeForEveryPhase(int sequences, int rows, int threads, int qkv, int append, int combine, int proj, int fc, int output)
    {
        const int width = 1536, heads = 16, start = 1024;
        var feeds = new NbpEngine.Kernels.Fused.StepFeeds();
        for (int s = 0; s < sequences; s++)
            feeds.Add(new NbpEngine.Kernels.Fused.StepFeed { Rows = rows, RowStart = s * rows, Start = start, Cache = s * 1000L });
        int group = NbpEngine.Kernels.Fused.LayerStepKernel.GroupSize(width, feeds.TotalRows, 256, 132);
        var phases = NbpEngine.Kernels.Fused.LayerStepKernel.Plan(width, heads, feeds, group);
        Assert.Equal(threads, group);
        Assert.Equal((qkv, append, heads * 33 * sequences, combine, proj, fc, output),
            (phases.QueryKeyValueGroups, phases.AppendGroups, phases.PartialGroups, phases.CombineGroups, phases.ProjectionGroups, phases.FcGroups, phases.OutGroups));
    }
}
