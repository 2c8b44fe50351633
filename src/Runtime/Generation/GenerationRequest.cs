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
    /// <summary>
    /// Classifier-free guidance scale t (0 = off): each step runs an unconditional stream beside the request (the same
    /// tokens, with the checkpoint's uncond_embedding in place of the L condition embeddings) in the same forward call,
    /// and samples from (1+t)·cond − t·uncond. Needs a checkpoint with transformer.uncond_embedding.
    /// </summary>
    public float GuidanceScale { get; init; }
    public GuidanceSchedule GuidanceSchedule { get; init; } = GuidanceSchedule.Constant;
}

/// <summary>How the guidance scale t varies over the steps.</summary>
public enum GuidanceSchedule
{
    /// <summary>t at every step.</summary>
    Constant,
    /// <summary>t·n at step n (the released code's scale_cfg: no guidance at step 0, growing with every step).</summary>
    Linear,
}
