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
}
