using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;

namespace NbpEngine.Runtime.Api;

/// <summary>One request's outcome in <see cref="NbpBatchSession.Generate"/>: its tokens, or the error that stopped it.</summary>
/// <param name="Index">the request's index in the list passed in</param>
/// <param name="Plan">the request resolved against the model</param>
/// <param name="Tokens">every generated token (model-vocabulary ids), null when <paramref name="Error"/> is set</param>
/// <param name="Error">why this request stopped (non-finite logits, ...); the batch's other requests go on</param>
public sealed record BatchResult(int Index, GenerationPlan Plan, int[]? Tokens, GenerationException? Error);

/// <summary>
/// Many generations at once: <see cref="Slots"/> sequences, each with its own KV cache, stepped together so a step
/// streams every weight matrix once for all of them (the rows of all slots go through each GEMM in one call). Requests
/// may differ in everything (prompt and its length, mode, block size, sampling, seed, steps); a finished request's slot
/// takes the next request at once. Batch invariance: a request's tokens are the ones <see cref="NbpSession"/> gives it
/// alone, whatever shares its steps (each sequence keeps its own reduction order and random stream). One run at a time.
/// Dispose it before its model.
/// </summary>
public sealed class NbpBatchSession : IDisposable
{
    private readonly NbpModel _model;
    private readonly IBackendSession _backend;
    private readonly SessionGuard _guard = new();
    private readonly SequenceFeed[] _feeds;
    private readonly int[] _tokens;

    public string BackendName { get; }
    /// <summary>Requests stepped together.</summary>
    public int Slots { get; }
    /// <summary>Positions each slot's KV cache holds.</summary>
    public int Capacity => _backend.Capacity;
    /// <summary>Forward calls made so far (one per step of all busy slots): for checks that the batch shares its steps.</summary>
    public long ForwardCalls { get; private set; }

    private readonly bool _guidance;

    /// <param name="slots">requests at a time; with guidance, slot s's unconditional stream is backend sequence slots + s</param>
    internal NbpBatchSession(NbpModel model, IBackendSession backend, string backendName, int slots, bool guidance)
    {
        _model = model;
        _backend = backend;
        BackendName = backendName;
        Slots = slots;
        _guidance = guidance;
        _feeds = new SequenceFeed[backend.Sequences];
        _tokens = new int[backend.Sequences * backend.Capacity];
    }

    /// <summary>Validates <paramref name="request"/> against the model and a slot's capacity.</summary>
    public GenerationPlan Plan(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_guard.Disposed, this);
        return _model.PlanFor(request, Capacity, _guidance, "a slot's KV cache", "the batch session");
    }

    /// <summary>
    /// Runs every request, <see cref="Slots"/> at a time, and yields each result as its request finishes (not in request
    /// order). Every request is validated before any compute: a bad one throws <see cref="GenerationException"/> naming
    /// its index. A request that fails while running (a backend handing back non-finite logits) yields a result with
    /// its error; the others go on. Enumerate once; the steps run as the enumeration advances.
    /// </summary>
    public IEnumerable<BatchResult> Generate(IReadOnlyList<GenerationRequest> requests, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requests);
        ObjectDisposedException.ThrowIf(_guard.Disposed, this);
        var plans = new GenerationPlan[requests.Count];
        for (int i = 0; i < plans.Length; i++)
        {
            try
            {
                plans[i] = Plan(requests[i]);
            }
            catch (GenerationException e)
            {
                throw new GenerationException($"request {i}: {e.Message}");
            }
        }
        return Run(requests, plans, cancellationToken);
    }

    private IEnumerable<BatchResult> Run(IReadOnlyList<GenerationRequest> requests, GenerationPlan[] plans, CancellationToken cancellationToken)
    {
        _guard.BeginRun();
        try
        {
            var slots = new SequenceState?[Slots];
            var outputs = new int[Slots][];
            var index = new int[Slots];
            int next = 0;
            var finished = new List<BatchResult>();
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                for (int s = 0; s < Slots && next < plans.Length; s++)
                {
                    if (slots[s] is not null) continue;
                    slots[s] = new SequenceState(plans[next], requests[next]);
                    outputs[s] = new int[plans[next].TokenCount];
                    index[s] = next++;
                }
                lock (_guard.Gate)
                {
                    ObjectDisposedException.ThrowIf(_guard.Disposed, this);
                    if (!StepAll(slots, outputs, index, plans, finished)) break;
                }
                foreach (var result in finished) yield return result;
                finished.Clear();
            }
        }
        finally
        {
            _guard.EndRun();
        }
    }

    /// <summary>One forward call for every busy slot (and its unconditional stream), then each slot's sampling; false when no slot is busy.</summary>
    private bool StepAll(SequenceState?[] slots, int[][] outputs, int[] index, GenerationPlan[] plans, List<BatchResult> finished)
    {
        int feeds = 0, taken = 0;
        for (int s = 0; s < slots.Length; s++)
        {
            var state = slots[s];
            if (state is null) continue;
            if (state.StepIndex == 0)
            {
                _backend.Reset(s);
                if (state.Plan.Guided) _backend.Reset(Slots + s);
            }
            feeds += state.NextFeeds(s, Slots + s, _feeds.AsSpan(feeds), _tokens.AsSpan(taken), out int tokens);
            taken += tokens;
        }
        if (feeds == 0) return false;
        _backend.Forward(_tokens.AsSpan(0, taken), _feeds.AsSpan(0, feeds));
        ForwardCalls++;
        for (int s = 0; s < slots.Length; s++)
        {
            var state = slots[s];
            if (state is null) continue;
            try
            {
                state.Accept(_backend, s, outputs[s].AsSpan(state.Produced));
            }
            catch (GenerationException e)
            {
                finished.Add(new BatchResult(index[s], plans[index[s]], null, e));
                slots[s] = null;
                continue;
            }
            if (!state.IsComplete) continue;
            finished.Add(new BatchResult(index[s], plans[index[s]], outputs[s], null));
            slots[s] = null;
        }
        return true;
    }

    /// <summary>Frees the KV caches; waits for a step in flight to finish first. Every later call throws ObjectDisposedException.</summary>
    public void Dispose()
    {
        lock (_guard.Gate)
        {
            if (!_guard.MarkDisposed()) return;
            _backend.Dispose();
        }
        _model.SessionClosed();
    }
}
