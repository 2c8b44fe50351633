namespace NbpEngine.Runtime.Sampling;

/// <summary>
/// Classifier-free guidance's blend, as every backend computes it: on the final-normed rows before the vocabulary head
/// (<see cref="Backends.SequenceFeed"/>), which is the logit blend of MODEL.md §5 up to rounding, the head being linear.
/// </summary>
public static class Guidance
{
    /// <summary>
    /// own[i] = (1+t)·own[i] − t·unconditional[i], both products and the difference rounded to fp32 apart (three
    /// roundings, no fused multiply-add: what PyTorch's separate ops give, and what the device kernel forces with .rn).
    /// </summary>
    public static void Blend(Span<float> own, ReadOnlySpan<float> unconditional, float t)
    {
        if (own.Length != unconditional.Length) throw new ArgumentException($"{own.Length} guided values, {unconditional.Length} unconditional ones");
        float keep = 1 + t;
        for (int i = 0; i < own.Length; i++) own[i] = keep * own[i] - t * unconditional[i];
    }
}
