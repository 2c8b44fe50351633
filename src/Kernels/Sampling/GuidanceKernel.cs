using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Sampling;

/// <summary>
/// Classifier-free guidance on the device: own = (1+t)·own − t·unconditional, rounded as Runtime.Sampling.Guidance.Blend
/// rounds it (<see cref="DeviceMath.GuidedLogit"/>). Grid: any 1D launch covering the values.
/// </summary>
public static class GuidanceKernel
{
    /// <param name="own">[rows, V] the guided sequence's logits, blended in place</param>
    /// <param name="unconditional">[rows, V] its unconditional stream's logits</param>
    /// <param name="t">the step's guidance scale</param>
    public static void Blend(ArrayView<float> own, ArrayView<float> unconditional, float t)
    {
        int i = Grid.GlobalIndex.X;
        if (i >= own.IntLength) return;
        own[i] = DeviceMath.GuidedLogit(1 + t, own[i], t, unconditional[i]);
    }
}
