using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Core;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// Launches per generation step, counted by the device session (issue 12 item 4). Today's count is pinned so a change
/// is deliberate; the target is at most 60 for K600's 24 layers, or one CUDA graph launch.
/// </summary>
public class LaunchCountTests
{
    [Fact]
    public void AStepIsEightLaunchesPerLayerPlusFourAndUploadsNoIds()
    {
        var file = SafetensorsFile.Open(Fixtures.PathOf("frame_model.safetensors")); // owned by the weights from here
        using var weights = TransformerWeights.Load(file, ModelConfigReader.Read(file, new ModelConfigOverrides(), NullLogger.Instance), NullLogger.Instance);
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        var kernels = new KernelSet<F32Weights>(device.Accelerator);
        using var deviceWeights = new DeviceWeights<F32Weights>(device.Accelerator, weights);
        int[] prompt = Fixtures.Tokens("frame_prompt.txt");
        using var session = new DeviceSession<F32Weights>(device.Accelerator, device.Shape, kernels, deviceWeights, prompt.Length + 32, prompt.Length, 16);
        var greedy = new SamplingArgs { Greedy = 1 };
        var ids = new int[16];
        session.Forward(prompt, MaskMath.BlockCausal, prompt.Length, 16, 16);
        session.Sample(greedy, ids);
        long launches = session.Launches, uploads = session.IdUploads;
        session.Forward(ids, MaskMath.None, 0, 16, 16);
        session.Sample(greedy, ids);
        // per layer: 2 LayerNorms, 4 GEMMs (Q/K/V fused), the split-key attention and its combine; then embedding,
        // final norm, head, sampler
        Assert.Equal(8 * weights.Config.LayerCount + 4, session.Launches - launches);
        // the step embedded the sampled ids where they already were, on the device: no copy (a pageable copy syncs the host)
        Assert.Equal(uploads, session.IdUploads);
        ids[3] ^= 1;
        session.Forward(ids, MaskMath.None, 0, 16, 16); // ids other than the last sample are uploaded
        Assert.Equal(uploads + 1, session.IdUploads);
    }
}
