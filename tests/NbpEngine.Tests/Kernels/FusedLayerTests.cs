using NbpEngine.Core;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The fused layer launch (LayerStepKernel, issue 12 item 4) runs the separate kernels' code as phases: its logits must
/// be the separate kernels' to the bit, for 16-row blocks and 1-row (NTP) steps, over several steps (the cache grows
/// across key chunks), for every weight storage; its counters must be back at zero after every launch for the next
/// one to work (a step is a launch per layer, and the model has two); and where groups run at the same time, each phase must wait for the one before.
/// </summary>
public class FusedLayerTests
{
    [Theory]
    [InlineData(16, 3, "f32")]
    [InlineData(16, 1, "f16")]
    [InlineData(16, 1, "bf16")]
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
    public void PhasesWaitForEachOtherWhereGroupsRunAtTheSameTime() => FusedEqualsSeparate<F32Weights>(16, 1, 4, sequences: 2);

    /// <summary>
    /// Several sequences' blocks in one fused launch (a batch's step, or a guided step's two streams): each block's rows
    /// are copied into its own cache and attend to it alone; the sequences sit at different positions (their prompts
    /// differ in length), so their blocks span different numbers of key chunks.
    /// </summary>
    [Theory]
    [InlineData(2, 16)]
    [InlineData(3, 1)]
    public void AFusedBatchStepHasTheSeparateKernelsBits(int sequences, int block) => FusedEqualsSeparate<F32Weights>(block, 1, 1, sequences);

    /// <summary>
    /// <paramref name="steps"/> steps of <paramref name="sequences"/> sequences (sequence s prompted with the fixture
    /// prompt less 16·s tokens) fused and with the separate kernels: the logits of every sequence at every step equal to
    /// the bit, and a step is one launch a layer fused.
    /// </summary>
    private static void FusedEqualsSeparate<TW>(int block, int steps, int multiprocessors, int sequences = 1) where TW : struct, IWeightView
    {
        using var frame = new FrameModelOnDevice<TW>(multiprocessors);
        Assert.Equal(multiprocessors, frame.Multiprocessors);
        var (weights, prompt) = (frame.Weights, frame.Prompt);
        int v = weights.Config.VocabSize, layers = weights.Config.LayerCount;
        var greedy = new SamplingArgs { Greedy = 1 };

        List<float[]> Logits(bool fused)
        {
            using var session = frame.Session(sequences, prompt.Length + steps * block, prompt.Length, sequences * 16);
            session.FusedLayers = fused;
            var ids = new int[sequences][];
            for (int s = 0; s < sequences; s++)
            {
                var own = prompt[..(prompt.Length - 16 * s)];
                session.Forward(own, [new SequenceFeed(s, own.Length, AttentionMask.BlockCausal(own.Length, 16), block)]);
                session.Sample(s, greedy, ids[s] = new int[block]);
            }
            var feeds = Enumerable.Range(0, sequences).Select(s => new SequenceFeed(s, block, AttentionMask.None, block)).ToArray();
            var all = new List<float[]>();
            for (int step = 0; step < steps; step++)
            {
                long launches = session.Launches;
                session.Forward(ids.SelectMany(x => x).ToArray(), feeds);
                for (int s = 0; s < sequences; s++)
                {
                    var logits = new float[block * v];
                    session.CopyLogits(s, logits);
                    all.Add(logits);
                    session.Sample(s, greedy, ids[s]);
                }
                // per sequence: embedding, final norm, sampler; the head GEMM once for every block
                int perLayer = fused ? 1 : sequences == 1 ? 6 : 4 + 2 * sequences;
                Assert.Equal(perLayer * layers + 3 * sequences + 1, session.Launches - launches);
            }
            return all;
        }

        // fused first: a later session may get the earlier one's freed buffers, and a fused step that failed to write its
        // cache would then read the separate kernels' right values at the same positions
        var fused = Logits(fused: true);
        var separate = Logits(fused: false);
        for (int i = 0; i < separate.Count; i++)
            Assert.True(separate[i].AsSpan().SequenceEqual(fused[i]),
                $"step {i / sequences}, sequence {i % sequences}: the fused layer's logits differ from the separate kernels'");
    }
}
