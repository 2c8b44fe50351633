namespace NbpEngine.Tests.Kernels;

/// <summary>The step GEMM's launch keeps every multiprocessor streaming: smaller groups when columns are few.</summary>
public class StepLaunchTests
{
    [Theory]
    [InlineData(1536, 256, 132, 192, 64)]    // 384 warps: groups of 2 warps -> 192 groups on 132 SMs
    [InlineData(64000, 256, 132, 2000, 256)] // the head: plenty of columns, full groups
    [InlineData(6144, 256, 132, 192, 256)]
    [InlineData(96, 32, 1, 24, 32)]          // ILGPU's CPU accelerator shape
    [InlineData(5, 256, 132, 2, 32)]         // fewer warps than SMs: single-warp groups
    public void GroupsShrinkUntilEverySmHasOne(int n, int groupSize, int sms, int groups, int threads)
    {
        var launch = NbpEngine.Kernels.Ops.StepMatMulKernel.Launch(n, groupSize, sms);
        Assert.Equal((groups, threads), (launch.GridDim.X, launch.GroupDim.X));
    }
}
