namespace NbpEngine.Runtime.Sampling;

/// <summary>Classifier-free guidance's logit blend, as every backend computes it.</summary>
public static class Guidance
{
    /// <summary>
    /// own[i] = (1+t)·own[i] − t·unconditional[i], both products and the difference rounded to fp32 apart (three
    /// roundings, no fused multiply-add: what PyTorch's separate ops give, and what the device kernel forces with .rn).
    /// </summary>
    public static void Blend(Span<float> own, ReadOnlySpan<float> unconditional, float t)
    {
        if (own.Length != unconditional.Length) throw new ArgumentException($"{own.Length} guided logits, {unconditional.Length} unconditional ones");
        float keep = 1 + t;
        for (int i = 0; i < own.Length; i++) own[i] = keep * own[i] - t * unconditional[i];
    }

    /// <summary>Both sequences were fed in the last forward call with the same logit rows, or the blend has nothing to pair.</summary>
    public static void CheckRows(int sequence, int rows, int unconditional, int unconditionalRows)
    {
        if (rows == 0 || unconditionalRows != rows)
            throw new InvalidOperationException($"guidance needs logits of both sequences from the last forward: {rows} rows for sequence {sequence}, {unconditionalRows} for {unconditional}");
    }
}
