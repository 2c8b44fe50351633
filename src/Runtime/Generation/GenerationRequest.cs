using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Runtime.Generation;

public enum GenerationMode
{
    /// <summary>NBP from the first step (K600 frame prediction; an optional condition prefix L). B = 1 is NTP.</summary>
    Frame,
    /// <summary>UCF hybrid: B NTP steps, then the middle-bos switch, then NBP (MODEL.md §5).</summary>
    Hybrid,
}

/// <summary>What to generate. Unset values come from the model's config (see <see cref="GenerationPlan"/>).</summary>
public sealed record GenerationRequest
{
    /// <summary>Model-vocabulary ids fed in the prefill. Hybrid: the L condition ids followed by bov (0).</summary>
    public required int[] Prompt { get; init; }
    public GenerationMode? Mode { get; init; }
    /// <summary>Tokens per step, B. Default: the checkpoint's token_number_per_step.</summary>
    public int? BlockSize { get; init; }
    /// <summary>Condition prefix length L. Frame default 0; hybrid default prompt length - 1.</summary>
    public int? CondLength { get; init; }
    /// <summary>Forward steps. Default: one whole clip of video tokens.</summary>
    public int? Steps { get; init; }
    public SamplingSettings Sampling { get; init; } = SamplingSettings.GreedyDecoding;
    public ulong Seed { get; init; }
}
