using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Runtime.Generation;

/// <summary>
/// Runs a <see cref="GenerationPlan"/> one step at a time on a backend session's sequence 0 (and sequence 1, the
/// unconditional stream, with classifier-free guidance); the stepping rule is <see cref="SequenceState"/>'s.
/// <see cref="Step"/> allocates nothing.
/// </summary>
public sealed class Generator
{
    /// <summary>The backend sequence of the unconditional stream.</summary>
    internal const int Unconditional = 1;

    private readonly IBackendSession _session;
    private readonly SessionGuard _guard;
    private readonly int _epoch;
    private readonly SequenceState _state;
    private readonly SequenceFeed[] _feeds = new SequenceFeed[2];
    private readonly int[] _tokens;

    public GenerationPlan Plan => _state.Plan;
    /// <summary>Steps done so far.</summary>
    public int StepIndex => _state.StepIndex;
    public bool IsComplete => _state.IsComplete;

    /// <summary>Made by <see cref="Api.NbpSession.CreateGenerator"/>, which checks the plan against the session.</summary>
    internal Generator(IBackendSession session, SessionGuard guard, GenerationPlan plan, GenerationRequest request)
    {
        _session = session;
        _guard = guard;
        _state = new SequenceState(plan, request);
        _tokens = new int[_state.SequencesPerStep * Math.Max(plan.PromptLength, plan.BlockSize)];
        lock (guard.Gate)
        {
            guard.Check(guard.Epoch);
            _epoch = guard.NextEpoch();
            session.Reset(0);
            if (plan.Guided) session.Reset(Unconditional);
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
            _state.CheckDestination(destination.Length);
            int feeds = _state.NextFeeds(0, Unconditional, _feeds, _tokens, out int tokens);
            _session.Forward(_tokens.AsSpan(0, tokens), _feeds.AsSpan(0, feeds));
            return _state.Accept(_session, 0, destination);
        }
    }
}
