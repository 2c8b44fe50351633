using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Runtime.Generation;

/// <summary>
/// Where one generation stands, step by step (MODEL.md §5), apart from where it runs: what it feeds next and what it
/// does with the tokens sampled for it. Frame: step 0 prefills the prompt with the block-causal mask and samples from
/// its last B rows; step n feeds the B tokens of step n-1. Hybrid: step 0 prefills with the hybrid mask, steps 1..B-1
/// are NTP, step B feeds [last token, 1, ..., B-1] (middle-bos), then NBP. The NBP rule: row r of the fed block
/// predicts token r of the next block. Used by <see cref="Generator"/> (one sequence) and by the batch session (many
/// sequences sharing each forward call). Allocates nothing after construction.
/// </summary>
internal sealed class SequenceState
{
    private readonly int[] _feed;      // tokens fed in the next step (B at most)
    private readonly int[] _sampled;   // tokens sampled in the last step
    private int _sampledCount;

    public GenerationPlan Plan { get; }
    public GenerationRequest Request { get; }
    /// <summary>Steps done so far.</summary>
    public int StepIndex { get; private set; }
    public bool IsComplete => StepIndex >= Plan.Steps;
    /// <summary>Tokens sampled so far.</summary>
    public int Produced { get; private set; }

    public SequenceState(GenerationPlan plan, GenerationRequest request)
    {
        Plan = plan;
        Request = request;
        _feed = new int[plan.BlockSize];
        _sampled = new int[plan.BlockSize];
    }

    /// <summary>
    /// Throws unless <paramref name="length"/> tokens hold the next step's output: callers check before the forward call,
    /// so a short buffer never leaves a step computed but not taken.
    /// </summary>
    public void CheckDestination(int length)
    {
        if (IsComplete) return; // NextFeeds says so
        int produce = Plan.TokensAt(StepIndex);
        if (length < produce) throw new ArgumentException($"step {StepIndex} produces {produce} tokens, destination holds {length}", "destination");
    }

    /// <summary>Backend sequences a step feeds: 2 with classifier-free guidance (the request and its unconditional stream).</summary>
    public int SequencesPerStep => Plan.Guided ? 2 : 1;

    /// <summary>
    /// Writes the next step's feeds for backend sequence <paramref name="sequence"/> (and, when guided, its unconditional
    /// stream <paramref name="unconditional"/>: the same tokens, its prefill embedding uncond_embedding for the L
    /// condition rows, blended into <paramref name="sequence"/> at this step's guidance scale before the vocabulary head)
    /// to <paramref name="feeds"/>, their tokens to <paramref name="tokens"/>; returns the feed count.
    /// </summary>
    public int NextFeeds(int sequence, int unconditional, Span<SequenceFeed> feeds, Span<int> tokens, out int tokenCount)
    {
        var feed = NextFeed(sequence, out var fed);
        fed.CopyTo(tokens);
        feeds[0] = feed;
        tokenCount = fed.Length;
        if (!Plan.Guided) return 1;
        fed.CopyTo(tokens[fed.Length..]);
        feeds[1] = feed with { Sequence = unconditional, UnconditionalRows = StepIndex == 0 ? Plan.CondLength : 0, GuidesSequence = sequence, GuidanceScale = Plan.GuidanceAt(StepIndex) };
        tokenCount += fed.Length;
        return 2;
    }

    private SequenceFeed NextFeed(int sequence, out ReadOnlySpan<int> tokens)
    {
        if (IsComplete) throw new InvalidOperationException($"generation finished after {Plan.Steps} steps");
        int step = StepIndex, b = Plan.BlockSize, produce = Plan.TokensAt(step);
        if (step == 0)
        {
            var mask = Plan.Mode == GenerationMode.Frame ? AttentionMask.BlockCausal(Plan.CondLength, b) : AttentionMask.Hybrid(Plan.CondLength, b);
            tokens = Request.Prompt;
            return new SequenceFeed(sequence, tokens.Length, mask, produce);
        }
        int fed;
        if (Plan.Mode == GenerationMode.Hybrid && step < b)
        {
            _feed[0] = _sampled[0];
            fed = 1;
        }
        else if (Plan.Mode == GenerationMode.Hybrid && step == b)
        {
            _feed[0] = _sampled[0];
            for (int r = 1; r < b; r++) _feed[r] = r; // middle-bos ids
            fed = b;
        }
        else
        {
            _sampled.AsSpan(0, _sampledCount).CopyTo(_feed);
            fed = _sampledCount;
        }
        tokens = _feed.AsSpan(0, fed);
        return new SequenceFeed(sequence, fed, AttentionMask.None, produce);
    }

    /// <summary>
    /// Samples this step's tokens from backend sequence <paramref name="sequence"/>'s logits (when the plan is guided,
    /// the forward call has already blended its unconditional stream in: <see cref="NextFeeds"/>) into
    /// <paramref name="destination"/> and moves to the next step; returns how many.
    /// </summary>
    public int Accept(IBackendSession session, int sequence, Span<int> destination)
    {
        int step = StepIndex, produce = Plan.TokensAt(step);
        CheckDestination(destination.Length);
        session.Sample(sequence, Request.Sampling, Request.Seed, step, _sampled.AsSpan(0, produce));
        // a backend fed non-finite numbers could hand back anything: never pass on an id outside the vocabulary
        for (int r = 0; r < produce; r++)
            if ((uint)_sampled[r] >= (uint)Plan.VocabSize)
                throw new GenerationException($"step {step}, row {r}: the backend sampled id {_sampled[r]}, outside the vocabulary [0, {Plan.VocabSize}) (non-finite logits?)");
        _sampledCount = produce;
        _sampled.AsSpan(0, produce).CopyTo(destination);
        StepIndex++;
        Produced += produce;
        return produce;
    }
}
