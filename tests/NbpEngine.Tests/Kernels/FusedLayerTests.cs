using NbpEngine.Core;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The fused layer launch (LayerStepKernel, issue 12 item 4) runs the separate kernels' code as phases: its logits must
/// be the separate kernels' to the bit, for a 16-row block and a 1-row (NTP) step, over several steps (the cache grows
/// across key chunks), for every weight storage; its counters must be back at zero after every launch for the next
/// one to work; and where groups run at the same time, each phase must wait for the one before.
/// </summary>
public class FusedLayerTests
{
    [Theory]
    [InlineData(16, 5, "f32")]
    [InlineData(1, 3, "f32")]
    [InlineData(16, 2, "f16")]
    [InlineData(16, 2, "bf16")]
    public void AFusedLayerStepHasTheSeparateKernelsBits(int block, int steps, string storage)
    {
        switch (storage)
        {
            case "f32": FusedEqualsSeparate<F32Weights>(block, steps, 1); break;
            case "f16": FusedEqualsSeparate<F16Weights>(block, steps, 1); break;
            default: FusedEqualsSeparate<BF16Weights>(block, steps, 1); break;
        }
    }

    /// <summary>
    /// Four multiprocessors take groups at the same time, so a phase's group can start while the phase before is still
    /// running (on one multiprocessor groups run in ticket order and every wait is already over): a missing or early
    /// wait reads Q/K/V, partials or activations not yet written, and the bits differ.
    /// </summary>
    [Fact]
    public void PhasesWaitForEachOtherWhereGroupsRunAtTheSameTime() => FusedEqualsSeparate<F32Weights>(16, 3, 4);

    private static void FusedEqualsSeparate<TW>(int block, int steps, int multiprocessors) where TW : struct, IWeightView
    {
        using var frame = new FrameModelOnDevice<TW>(multiprocessors);
        Assert.Equal(multiprocessors, frame.Multiprocessors);
        var (weights, prompt) = (frame.Weights, frame.Prompt);
        int v = weights.Config.VocabSize;
        var greedy = new SamplingArgs { Greedy = 1 };

        List<float[]> Logits(bool fused)
        {
            using var session = frame.Session(1, prompt.Length + steps * block, prompt.Length, 16);
            session.FusedLayers = fused;
            var ids = new int[block];
            session.Forward(prompt, [new SequenceFeed(0, prompt.Length, AttentionMask.BlockCausal(prompt.Length, 16), block)]);
            session.Sample(0, greedy, ids);
            var all = new List<float[]>();
            for (int step = 0; step < steps; step++)
            {
                long launches = session.Launches;
                session.Forward(ids, [new SequenceFeed(0, block, AttentionMask.None, block)]);
                var logits = new float[block * v];
                session.CopyLogits(0, logits);
                all.Add(logits);
                session.Sample(0, greedy, ids);
                Assert.Equal((fused ? 1 : 6) * weights.Config.LayerCount + 4, session.Launches - launches);
            }
            return all;
        }

        var separate = Logits(fused: false);
        var fused = Logits(fused: true);
        for (int step = 0; step < steps; step++)
            Assert.True(separate[step].AsSpan().SequenceEqual(fused[step]), $"step {step}: the fused layer's logits differ from the separate kernels'");
    }
}
