using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Sampling;

/// <summary>
/// Classifier-free guidance on the device (before the vocabulary head: SequenceFeed.GuidesSequence): own = (1+t)·own − t·unconditional, rounded as Runtime.Sampling.Guidance.Blend
/// rounds it (<see cref="DeviceMath.GuidedLogit"/>). Grid: any 1D launch covering the values.
/// </summary>
public static class GuidanceKernel
{
    /// <param name="own">the guided sequence's final-normed rows (the vocabulary head's input), blended in place</param>
    /// <param name="unconditional">its unconditional stream's rows, as many</param>
    /// <param name="t">the step's guidance scale</param>
    public static void Blend(ArrayView<float> own, ArrayView<float> unconditional, float t)
    {
        int i = Grid.GlobalIndex.X;
        if (i >= own.IntLength) return;
        own[i] = DeviceMath.GuidedLogit(1 + t, own[i], t, unconditional[i]);
    }
}
