using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Core;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// Launches per generation step, counted by the device session (issue 12 item 4). Today's count is pinned so a change
/// is deliberate; the target is at most 60 for K600's 24 layers, or one CUDA graph launch.
/// </summary>
public class LaunchCountTests
{
    [Fact]
    public void AStepIsSixLaunchesPerLayerPlusFourAndUploadsNoIdsAlsoInABatch()
    {
        var file = SafetensorsFile.Open(Fixtures.PathOf("frame_model.safetensors")); // owned by the weights from here
        using var weights = TransformerWeights.Load(file, ModelConfigReader.Read(file, new ModelConfigOverrides(), NullLogger.Instance), NullLogger.Instance);
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        var kernels = new KernelSet<F32Weights>(device.Accelerator);
        using var deviceWeights = new DeviceWeights<F32Weights>(device.Accelerator, weights);
        int[] prompt = Fixtures.Tokens("frame_prompt.txt");
        using var session = new DeviceSession<F32Weights>(device.Accelerator, device.Shape, kernels, deviceWeights, 2, prompt.Length + 64, 2 * prompt.Length, 32);
        var greedy = new SamplingArgs { Greedy = 1 };
        var ids = new int[16];
        session.Forward(prompt, [new SequenceFeed(0, prompt.Length, AttentionMask.BlockCausal(prompt.Length, 16), 16)]);
        session.Sample(0, greedy, ids);
        long launches = session.Launches, uploads = session.IdUploads;
        session.Forward(ids, [new SequenceFeed(0, 16, AttentionMask.None, 16)]);
        session.Sample(0, greedy, ids);
        // per layer: 4 GEMMs (Q/K/V fused; LN1 and LN2 folded into the Q/K/V and fc GEMMs), the split-key attention and
        // its combine; then embedding, final norm, head, sampler
        int layers = weights.Config.LayerCount;
        Assert.Equal(6 * layers + 4, session.Launches - launches);
        // the step embedded the sampled ids where they already were, on the device: no copy (a pageable copy syncs the host)
        Assert.Equal(uploads, session.IdUploads);
        ids[3] ^= 1;
        session.Forward(ids, [new SequenceFeed(0, 16, AttentionMask.None, 16)]); // ids other than the last sample are uploaded
        Assert.Equal(uploads + 1, session.IdUploads);
        session.Sample(0, greedy, ids);

        // two sequences in one step: every GEMM once over both blocks (the step GEMM takes them as two row groups, the
        // norms folded in; Q/K/V rows are then copied to each cache), attention, embedding, final norm and sampler per sequence;
        // each sequence's own last sample is embedded in place
        var other = new int[16];
        session.Forward(prompt, [new SequenceFeed(1, prompt.Length, AttentionMask.BlockCausal(prompt.Length, 16), 16)]);
        session.Sample(1, greedy, other);
        SequenceFeed[] both = [new SequenceFeed(0, 16, AttentionMask.None, 16), new SequenceFeed(1, 16, AttentionMask.None, 16)];
        // sequence 1's prefill alone took the sampled-id slots sequence 0's last sample sat in: uploaded once
        uploads = session.IdUploads;
        session.Forward([.. ids, .. other], both);
        Assert.Equal(uploads + 1, session.IdUploads);
        session.Sample(0, greedy, ids);
        session.Sample(1, greedy, other);
        launches = session.Launches;
        uploads = session.IdUploads;
        session.Forward([.. ids, .. other], both);
        session.Sample(0, greedy, ids);
        session.Sample(1, greedy, other);
        Assert.Equal(8 * layers + 7, session.Launches - launches);
        Assert.Equal(uploads, session.IdUploads);
    }
}
