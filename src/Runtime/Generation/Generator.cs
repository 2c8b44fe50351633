using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Runtime.Generation;

/// <summary>
/// Runs a <see cref="GenerationPlan"/> one step at a time on a backend session (MODEL.md §5).
/// Frame: step 0 prefills the prompt with the block-causal mask and samples from its last B rows;
/// step n feeds the B tokens of step n-1. Hybrid: step 0 prefills with the hybrid mask, steps
/// 1..B-1 are NTP, step B feeds [last token, 1, ..., B-1] (middle-bos), then NBP. The NBP rule:
/// row r of the fed block predicts token r of the next block. <see cref="Step"/> allocates nothing.
/// </summary>
public sealed class Generator
{
    private readonly IBackendSession _session;
    private readonly SessionGuard _guard;
    private readonly int _epoch;
    private readonly GenerationRequest _request;
    private readonly int[] _feed;      // tokens fed in the next step (B at most)
    private readonly int[] _sampled;   // tokens sampled in the last step
    private int _sampledCount;

    public GenerationPlan Plan { get; }
    /// <summary>Steps done so far.</summary>
    public int StepIndex { get; private set; }
    public bool IsComplete => StepIndex >= Plan.Steps;

    /// <summary>Made by <see cref="Api.NbpSession.CreateGenerator"/>, which checks the plan against the session.</summary>
    internal Generator(IBackendSession session, SessionGuard guard, GenerationPlan plan, GenerationRequest request)
    {
        _session = session;
        _guard = guard;
        _request = request;
        Plan = plan;
        _feed = new int[plan.BlockSize];
        _sampled = new int[plan.BlockSize];
        lock (guard.Gate)
        {
            guard.Check(guard.Epoch);
            _epoch = guard.NextEpoch();
            session.Reset();
        }
    }

    /// <summary>
    /// Runs the next step and writes its sampled tokens to <paramref name="destination"/>; returns how many.
    /// Throws <see cref="ObjectDisposedException"/> once the session is disposed and <see cref="InvalidOperationException"/>
    /// when a newer generator of the same session has replaced this one.
    /// </summary>
    public int Step(Span<int> destination)
    {
        lock (_guard.Gate)
        {
            _guard.Check(_epoch);
            return StepUnderGate(destination);
        }
    }

    private int StepUnderGate(Span<int> destination)
    {
        if (IsComplete) throw new InvalidOperationException($"generation finished after {Plan.Steps} steps");
        int step = StepIndex, b = Plan.BlockSize;
        int produce = Plan.TokensAt(step);
        if (destination.Length < produce)
            throw new ArgumentException($"step {step} produces {produce} tokens, destination holds {destination.Length}", nameof(destination));

        if (step == 0)
        {
            var mask = Plan.Mode == GenerationMode.Frame ? AttentionMask.BlockCausal(Plan.CondLength, b) : AttentionMask.Hybrid(Plan.CondLength, b);
            _session.Forward(_request.Prompt, mask, produce);
        }
        else
        {
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
            _session.Forward(_feed.AsSpan(0, fed), AttentionMask.None, produce);
        }

        _session.Sample(_request.Sampling, _request.Seed, step, _sampled.AsSpan(0, produce));
        // a backend fed non-finite numbers could hand back anything: never pass on an id outside the vocabulary
        for (int r = 0; r < produce; r++)
            if ((uint)_sampled[r] >= (uint)Plan.VocabSize)
                throw new GenerationException($"step {step}, row {r}: the backend sampled id {_sampled[r]}, outside the vocabulary [0, {Plan.VocabSize}) (non-finite logits?)");
        _sampledCount = produce;
        _sampled.AsSpan(0, produce).CopyTo(destination);
        StepIndex++;
        return produce;
    }
}
