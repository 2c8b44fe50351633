using NbpEngine.Runtime.Generation;

namespace NbpEngine.Runtime.Sampling;

/// <summary>Per-row sampling rule of MODEL.md §6. <see cref="Greedy"/> ignores the other fields.</summary>
public readonly record struct SamplingSettings(bool Greedy, float Temperature = 1f, int TopK = 0, float TopP = 1f)
{
    public static SamplingSettings GreedyDecoding => new(true);

    /// <summary>Published K600/UCF evaluation settings: top-k 16000, top-p 0.9, temperature 1.</summary>
    public static SamplingSettings Published => new(false, 1f, 16000, 0.9f);

    /// <summary>A bad setting is a bad request: <see cref="GenerationException"/> (an input error) with the value found.</summary>
    public void Validate()
    {
        if (Greedy) return;
        if (!(Temperature > 0) || float.IsInfinity(Temperature)) throw new GenerationException($"temperature must be a positive finite number, found {Temperature}");
        if (TopK < 0) throw new GenerationException($"top-k must be >= 0 (0 = off), found {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new GenerationException($"top-p must be in (0, 1] (1 = off), found {TopP}");
    }

    public override string ToString() => Greedy ? "greedy" : $"temperature {Temperature}, top-k {TopK}, top-p {TopP}";
}
