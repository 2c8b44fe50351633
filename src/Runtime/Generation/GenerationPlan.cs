using NbpEngine.Loader.Checkpoint;
using NbpEngine.Core;

namespace NbpEngine.Runtime.Generation;

/// <summary>
/// A request resolved against a model: block size, prefix, step count, and the positions and tokens
/// they imply. Validation happens here, before any compute, with messages that name the values.
/// </summary>
public sealed record GenerationPlan
{
    public required GenerationMode Mode { get; init; }
    public required int BlockSize { get; init; }
    public required int CondLength { get; init; }
    public required int Steps { get; init; }
    public required int PromptLength { get; init; }
    /// <summary>Rows of the embedding: every sampled id must lie in [0, VocabSize).</summary>
    public required int VocabSize { get; init; }
    /// <summary>Classifier-free guidance scale (0 = off) and its schedule; see <see cref="GuidanceAt"/>.</summary>
    public float GuidanceScale { get; init; }
    public GuidanceSchedule GuidanceSchedule { get; init; }
    /// <summary>Whether each step also runs the unconditional stream.</summary>
    public bool Guided => GuidanceScale != 0;

    /// <summary>The guidance scale t of step <paramref name="step"/>.</summary>
    public float GuidanceAt(int step) => GuidanceSchedule == GuidanceSchedule.Linear ? GuidanceScale * step : GuidanceScale;

    /// <summary>Tokens sampled over all steps (the output; middle-bos are fed, never sampled).</summary>
    public int TokenCount => Mode == GenerationMode.Frame
        ? Steps * BlockSize
        : Math.Min(Steps, BlockSize) + Math.Max(0, Steps - BlockSize) * BlockSize;

    /// <summary>Positions the KV cache must hold: everything fed (the last sampled block never is).</summary>
    public int PositionsNeeded => Mode == GenerationMode.Frame
        ? PromptLength + (Steps - 1) * BlockSize
        : PromptLength + (Math.Min(Steps, BlockSize) - 1) + Math.Max(0, Steps - BlockSize) * BlockSize;

    /// <summary>Tokens sampled by step <paramref name="step"/>.</summary>
    public int TokensAt(int step) => Mode == GenerationMode.Hybrid && step < BlockSize ? 1 : BlockSize;

    public static GenerationPlan Resolve(GenerationRequest request, ModelConfig config)
    {
        var mode = request.Mode ?? (config.Hybrid ? GenerationMode.Hybrid : GenerationMode.Frame);
        int b = request.BlockSize ?? config.BlockSize;
        int promptLength = request.Prompt.Length;
        if (b < 1) throw new GenerationException($"block size must be >= 1, found {b}");
        if (promptLength < 1) throw new GenerationException("the prompt is empty");
        request.Sampling.Validate();
        foreach (int id in request.Prompt)
            if ((uint)id >= (uint)config.VocabSize)
                throw new GenerationException($"prompt id {id} is outside the model vocabulary [0, {config.VocabSize})");

        int cond;
        int steps;
        if (mode == GenerationMode.Frame)
        {
            cond = request.CondLength ?? 0;
            if (cond < 0 || cond > promptLength) throw new GenerationException($"cond length {cond} must be in [0, prompt length {promptLength}]");
            if (promptLength < b)
                throw new GenerationException($"frame mode samples from the last B = {b} prompt rows, but the prompt has {promptLength} tokens");
            int remaining = config.VideoTokenCount - (promptLength - cond);
            steps = request.Steps ?? remaining / b;
            if (request.Steps is null && (remaining <= 0 || remaining % b != 0))
                throw new GenerationException($"cannot derive --steps: {remaining} video tokens remain after the prompt, not a positive multiple of B = {b}; pass --steps");
        }
        else
        {
            if (b > config.BlockSize)
                throw new GenerationException($"hybrid block size {b} exceeds the model's token_number_per_step {config.BlockSize}: middle-bos ids 1..B-1 would collide with condition ids");
            if (request.Prompt[^1] != 0)
                throw new GenerationException($"hybrid prompt must end with bov (id 0), found {request.Prompt[^1]}");
            cond = request.CondLength ?? promptLength - 1;
            if (cond + 1 != promptLength)
                throw new GenerationException($"hybrid prompt must hold cond length {cond} condition ids + bov = {cond + 1} tokens, found {promptLength}");
            steps = request.Steps ?? config.VideoTokenCount / b + b - 1;
        }
        if (steps < 1) throw new GenerationException($"steps must be >= 1, found {steps}");
        // every step feeds at least one position: check in 64 bits before any int product is formed
        long fedBeforeLastStep = mode == GenerationMode.Frame
            ? promptLength + (steps - 1L) * b
            : promptLength + (Math.Min(steps, b) - 1L) + Math.Max(0L, steps - (long)b) * b;
        if (fedBeforeLastStep > config.PositionCount)
            throw new GenerationException($"generation needs {fedBeforeLastStep} positions ({steps} steps of B = {b} after a {promptLength}-token prompt), the model has {config.PositionCount} learned positions");

        if (request.GuidanceScale != 0)
        {
            if (!float.IsFinite(request.GuidanceScale)) throw new GenerationException($"the guidance scale must be a finite number, found {request.GuidanceScale}");
            if (cond != config.CondTokenCount || cond == 0)
                throw new GenerationException($"classifier-free guidance replaces the condition's {config.CondTokenCount} embeddings (cond_token_num), so it needs a condition of that length; this request's is {cond}");
        }
        var plan = new GenerationPlan
        {
            Mode = mode, BlockSize = b, CondLength = cond, Steps = steps, PromptLength = promptLength, VocabSize = config.VocabSize,
            GuidanceScale = request.GuidanceScale, GuidanceSchedule = request.GuidanceSchedule,
        };
        return plan;
    }
}

/// <summary>A generation request that cannot run on this model; the message says why.</summary>
public sealed class GenerationException(string message) : NbpInputException(message);
