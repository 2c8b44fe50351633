using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// A measured launch rule for the step GEMMs (DeviceSession.StepGemmRule, built from the launch-shape sweep so that a
/// GPU session can time a whole step under it): one K split per GEMM, column warps by row count, and a sequence's bits
/// independent of its batch under it.
/// </summary>
public class StepGemmRuleTests
{
    [Fact]
    public void TheRuleLaunchesByItsEntriesAndLeavesOtherGemmsAlone()
    {
        var rule = new StepGemmRule([new(1536, 6144, 4, 1, 2), new(1536, 6144, 4, 16, 1), new(1536, 6144, 4, 32, 1)]);
        Assert.Equal(4, rule.Splits(1536, 6144));
        Assert.Equal(1, rule.Splits(1536, 1536));
        Assert.Equal(32, rule.MaxRows(1536, 6144));
        Assert.Equal(128, rule.MaxRows(6144, 1536));
        // 384 column quads: 2 column warps x K/4 at 1 row, 1 at 16 (and 2 row groups at 32 rows)
        Assert.Equal((192, 2 * 4 * 32), Shape(rule.Launch(1536, 6144, 1, 256, 132)));
        Assert.Equal((384, 4 * 32), Shape(rule.Launch(1536, 6144, 16, 256, 132)));
        Assert.Equal((384, 2 * 4 * 32), Shape(rule.Launch(1536, 6144, 20, 256, 132)));
        // a GEMM it has no entry for launches as without it
        Assert.Equal(Shape(StepMatMulKernel.Launch(4608, 16, 256, 132)), Shape(rule.Launch(4608, 1536, 16, 256, 132)));
        Assert.Throws<ArgumentOutOfRangeException>(() => rule.Launch(1536, 6144, 48, 256, 132)); // 3 row groups x K/4: 12 warps
        // a split that depends on the rows would make a sequence's bits depend on its batch
        var mixed = Assert.Throws<ArgumentException>(() => new StepGemmRule([new(96, 96, 2, 1, 1), new(96, 96, 1, 16, 1)]));
        Assert.Contains("one split for every row count", mixed.Message);
        Assert.Throws<ArgumentException>(() => new StepGemmRule([new(96, 96, 4, 32, 2)])); // 2 x 2 x 4 = 16 warps
        Assert.Throws<ArgumentException>(() => new StepGemmRule([new(96, 96, 3, 1, 1)]));
    }

    private static (int Groups, int Threads) Shape(ILGPU.KernelConfig config) => (config.GridDim.X, config.GroupDim.X);

    /// <summary>
    /// Under a rule that splits every GEMM of the fixture model 8 ways (so one launch takes 16 rows), a two-sequence
    /// step's GEMMs are cut into two launches each, and each sequence's logits equal to the bit those of a session that
    /// steps it alone. They differ from today's unsplit launches only by the rounding of another order of the sums.
    /// </summary>
    [Fact]
    public void UnderARuleABatchedRowGetsTheBitsItGetsAlone()
    {
        using var frame = new FrameModelOnDevice<F32Weights>();
        int c = frame.Weights.Config.EmbeddingSize, v = frame.Weights.Config.VocabSize;
        (int N, int K)[] gemms = [(3 * c, c), (c, c), (4 * c, c), (c, 4 * c), (v, c)];
        var rule = new StepGemmRule(gemms.Select(g => new StepGemmEntry(g.N, g.K, 8, 16, 1)));

        List<float[]> Step(int sequences, StepGemmRule? launchRule) => frame.StepAfterPrompt(sequences, session => session.StepGemmRule = launchRule).Logits;

        var alone = Step(1, rule)[0];
        var batched = Step(2, rule);
        for (int s = 0; s < 2; s++)
            Assert.True(batched[s].AsSpan().SequenceEqual(alone), $"sequence {s} of the batch: logits differ from the sequence's alone under the rule");
        var today = Step(1, null)[0];
        Assert.False(today.AsSpan().SequenceEqual(alone), "the rule's K splits changed no bit: did they reach the GEMMs?");
        float largest = today.Max(MathF.Abs), difference = today.Zip(alone, (x, y) => MathF.Abs(x - y)).Max();
        Assert.InRange(difference / largest, 0, 1e-5);
    }
}
