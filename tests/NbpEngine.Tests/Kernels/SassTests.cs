using NbpEngine.Kernels;
using NbpEngine.Tests.Support;
using Xunit.Abstractions;

namespace NbpEngine.Tests.Kernels;

/// <summary>A [Theory] that is skipped, with the reason, when ptxas/cuobjdump/nvdisasm are not fetched (.ci/run fetches them).</summary>
public sealed class TheoryRequiringCudaToolsAttribute : TheoryAttribute
{
    public TheoryRequiringCudaToolsAttribute()
    {
        if (SassInspector.ToolsFolder is null) Skip = "ptxas/cuobjdump/nvdisasm not found: bash tools/sass/fetch-cuda-tools.sh";
    }
}

/// <summary>A [Fact] skipped likewise.</summary>
public sealed class FactRequiringCudaToolsAttribute : FactAttribute
{
    public FactRequiringCudaToolsAttribute()
    {
        if (SassInspector.ToolsFolder is null) Skip = "ptxas/cuobjdump/nvdisasm not found: bash tools/sass/fetch-cuda-tools.sh";
    }
}

/// <summary>
/// What the GPU will run, checked without a GPU: every kernel must assemble with ptxas for sm_90 (the PTX tests
/// only check ILGPU's output), and the tensor-core kernel must really issue HMMA. The table of figures goes to
/// the test output, and to the file named by NBP_SASS_TABLE when set (bench/RESULTS.md quotes it).
/// </summary>
public class SassTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    public static TheoryData<string> Kernels() => new(KernelCatalog.All().Select(SassInspector.Name));

    [TheoryRequiringCudaTools]
    [MemberData(nameof(Kernels))]
    public void EveryKernelAssemblesForSm90(string name)
    {
        var figures = SassInspector.Inspect(KernelCatalog.All().Single(m => SassInspector.Name(m) == name), _dir.Path);
        output.WriteLine(figures.ToString());
        Assert.InRange(figures.Registers, 1, 255);
        Assert.True(figures.Instructions > 10, $"{name}: only {figures.Instructions} SASS instructions parsed");
        if (name.StartsWith("TensorCore", StringComparison.Ordinal) || name.StartsWith("StepMma", StringComparison.Ordinal)) Assert.True(figures.Hmma > 0, $"{name}: no HMMA in the SASS");
        else Assert.Equal(0, figures.Hmma);
    }

    /// <summary>
    /// The step GEMM streams the weights: 16-byte loads (LDG.128), accumulators in registers (no stack frame, no
    /// spills, no local memory), no fp64, for every weight storage (issue 12 item 6); so does the fused layer launch
    /// that runs it as four of its phases (LayerStepKernel), which must also fit one group's shared memory (48 KB). With
    /// 16-bit weights (the default) the fused layer keeps three 128-thread groups a multiprocessor: at most 168
    /// registers (65536 / (3 x 128), in ptxas's steps of 8). The next pass's weights fetched early took 137 -> 154;
    /// a 16-row pass as one basic block took 241 and was not kept.
    /// </summary>
    [TheoryRequiringCudaTools]
    [InlineData("StepMatMulKernel.Step", "F32Weights")]
    [InlineData("StepMatMulKernel.Step", "F16Weights")]
    [InlineData("StepMatMulKernel.Step", "BF16Weights")]
    [InlineData("LayerStepKernel.Layer", "F32Weights")]
    [InlineData("LayerStepKernel.Layer", "F16Weights")]
    [InlineData("LayerStepKernel.Layer", "BF16Weights")]
    public void TheStepGemmStreamsWeightsFromRegisters(string entry, string storage)
    {
        var kernel = KernelCatalog.All().Single(m => SassInspector.Name(m) == $"{entry}<{storage}>");
        var f = SassInspector.Inspect(kernel, _dir.Path);
        output.WriteLine(f.ToString());
        Assert.True(f.Ldg128 >= (storage == "F32Weights" ? 8 : 4), $"{f.Kernel}: {f.Ldg128} LDG.128, expected the four columns' 16-byte weight loads");
        AssertAllInRegisters(f);
        Assert.InRange(f.SharedBytes, 1, 48 * 1024);
        if (entry.StartsWith("LayerStep", StringComparison.Ordinal) && storage != "F32Weights")
            Assert.True(f.Registers <= 168, $"{f.Kernel}: {f.Registers} registers, over the 168 that keep three fused-layer groups a multiprocessor");
    }

    /// <summary>
    /// The sampler runs in fp32 (issue 12 item 3): no double-precision instruction or conversion in any of its kernels (a
    /// uint-to-float conversion alone once brought one in), no stack frame or local memory (a chunk walk's 15 candidate
    /// sums stay in registers); its divisions are IEEE (div.rn), as the CPU's, so both draw the same tokens.
    /// </summary>
    [TheoryRequiringCudaTools]
    [InlineData("ArgMax")]
    [InlineData("Scale")]
    [InlineData("TopKLevel")]
    [InlineData("Weigh")]
    [InlineData("TopPLevel")]
    [InlineData("Cut")]
    [InlineData("Survivors")]
    [InlineData("Draw")]
    public void TheSamplerHasNoFp64(string entry)
    {
        var kernel = KernelCatalog.All().Single(m => SassInspector.Name(m) == $"SamplingKernel.{entry}");
        var f = SassInspector.Inspect(kernel, _dir.Path);
        output.WriteLine(f.ToString());
        Assert.Equal(0, f.Fp64);
        Assert.Equal(0, f.StackBytes);
        Assert.Equal(0, f.LocalMemory);
        Assert.Equal((0, 0), (f.SpillStoreBytes, f.SpillLoadBytes));
        string ptx = File.ReadAllText(Path.Combine(_dir.Path, $"SamplingKernel.{entry}.ptx")); // Inspect left it there
        Assert.DoesNotContain(".f64", ptx);
        Assert.DoesNotContain("div.approx", ptx);
        Assert.DoesNotContain("div.full", ptx);
    }

    /// <summary>
    /// The tensor-core kernels (prefill GEMM, tokenizer conv) issue HMMA for the whole warp tile (16 per slice), keep
    /// their 32 accumulators in registers (no stack frame, spills or local memory) and stage with 16-byte loads
    /// (issue 13 item 5).
    /// </summary>
    [TheoryRequiringCudaTools]
    [InlineData("TensorCoreMatMulKernel.TensorCore<F32Weights>")]
    [InlineData("TensorCoreMatMulKernel.TensorCore<F16Weights>")]
    [InlineData("TensorCoreMatMulKernel.TensorCore<BF16Weights>")]
    [InlineData("TensorCoreConv3dKernel.Conv<ConvWindowSource>")]
    [InlineData("TensorCoreConv3dKernel.Conv<ConvGatherSource>")]
    public void TheTensorCoreKernelsMultiplyOnTensorCoresFromRegisters(string name)
    {
        var f = SassInspector.Inspect(KernelCatalog.All().Single(m => SassInspector.Name(m) == name), _dir.Path);
        output.WriteLine(f.ToString());
        Assert.True(f.Hmma >= 16, $"{name}: {f.Hmma} HMMA, expected the warp tile's 16 per slice");
        Assert.True(f.Ldg128 >= 2, $"{name}: {f.Ldg128} LDG.128, expected 16-byte staging loads");
        AssertAllInRegisters(f);
        // the slice loop: 16 HMMA in ~480-560 instructions on every path today (1625 before the staging cursor); a
        // regression to per-element index division would double it
        Assert.InRange(f.HmmaLoop, 16, name.Contains("Gather", StringComparison.Ordinal) ? 1600 : 700);
    }

    /// <summary>
    /// The tensor-core step GEMM: HMMA in its slice loop (two slices a pass, 8 HMMA each: two column fragments, two row
    /// halves, two k halves), its weight and A loads 16 bytes wide, nothing on the stack or spilled, and for 16-bit
    /// weights at most 128 registers (two 256-thread groups a multiprocessor). First build: 118 registers, 240
    /// instructions a pass (311 while each load sat behind its own branch and A was addressed in 64 bits).
    /// </summary>
    [TheoryRequiringCudaTools]
    [InlineData("F16Weights")]
    [InlineData("BF16Weights")]
    [InlineData("F32Weights")]
    public void TheTensorCoreStepGemmStreamsWeightsIntoHmma(string storage)
    {
        var f = SassInspector.Inspect(KernelCatalog.All().Single(m => SassInspector.Name(m) == $"StepMmaKernel.Step<{storage}>"), _dir.Path);
        output.WriteLine(f.ToString());
        Assert.True(f.Hmma >= 16, $"{f.Kernel}: {f.Hmma} HMMA, expected a pass's 16");
        Assert.True(f.Ldg128 >= 8, $"{f.Kernel}: {f.Ldg128} LDG.128, expected a pass's weight and A loads 16 bytes wide");
        AssertAllInRegisters(f);
        Assert.InRange(f.HmmaLoop, 16, storage == "F32Weights" ? 450 : 320);
        if (storage != "F32Weights") Assert.True(f.Registers <= 128, $"{f.Kernel}: {f.Registers} registers, over the 128 that keep two groups a multiprocessor");
    }

    /// <summary>No stack frame, spills or local memory (everything in registers), and no fp64.</summary>
    private static void AssertAllInRegisters(SassFigures f)
    {
        Assert.Equal(0, f.StackBytes);
        Assert.Equal((0, 0), (f.SpillStoreBytes, f.SpillLoadBytes));
        Assert.Equal(0, f.LocalMemory);
        Assert.Equal(0, f.Fp64);
    }

    [FactRequiringCudaTools]
    public void TheFigureTable()
    {
        var rows = KernelCatalog.All().Select(k => SassInspector.Inspect(k, _dir.Path)).ToList();
        var lines = new List<string>
        {
            "| kernel | registers | stack B | spill st/ld B | smem B | SASS instr. | HMMA | LDG.128 | fp64 ops | LDL/STL | HMMA loop instr. |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        };
        lines.AddRange(rows.Select(f => $"| {f.Kernel} | {f.Registers} | {f.StackBytes} | {f.SpillStoreBytes}/{f.SpillLoadBytes} | {f.SharedBytes} | {f.Instructions} | {f.Hmma} | {f.Ldg128} | {f.Fp64} | {f.LocalMemory} | {(f.HmmaLoop > 0 ? f.HmmaLoop.ToString() : "-")} |"));
        foreach (var line in lines) output.WriteLine(line);
        if (Environment.GetEnvironmentVariable("NBP_SASS_TABLE") is { Length: > 0 } path) File.WriteAllLines(path, lines);
        Assert.Equal(KernelCatalog.All().Count(), rows.Select(r => r.Kernel).Distinct().Count());
    }
}
