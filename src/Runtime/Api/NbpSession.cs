using System.Runtime.CompilerServices;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;

namespace NbpEngine.Runtime.Api;

/// <summary>One block of generated tokens, as streamed by <see cref="NbpSession.GenerateAsync"/>.</summary>
/// <param name="Step">forward step that produced it</param>
/// <param name="FirstIndex">index of its first token among all generated tokens</param>
/// <param name="Tokens">model-vocabulary ids</param>
public sealed record GeneratedBlock(int Step, int FirstIndex, int[] Tokens);

/// <summary>Progress after each step.</summary>
public readonly record struct GenerationProgress(int Step, int Steps, int Tokens, int TotalTokens);

/// <summary>
/// One generation stream: owns its KV cache (allocated when the session is created). One generation
/// at a time; make a session per concurrent stream. Dispose it before its model.
/// </summary>
public sealed class NbpSession : IDisposable
{
    private readonly NbpModel _model;
    private readonly IBackendSession _backend;
    private readonly SessionGuard _guard = new();

    public string BackendName { get; }
    public int Capacity => _backend.Capacity;

    private readonly bool _guidance;

    internal NbpSession(NbpModel model, IBackendSession backend, string backendName, bool guidance)
    {
        _model = model;
        _guidance = guidance;
        _backend = backend;
        BackendName = backendName;
    }

    /// <summary>Validates <paramref name="request"/> against the model and this session.</summary>
    public GenerationPlan Plan(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_guard.Disposed, this);
        return _model.PlanFor(request, Capacity, _guidance, "this session's KV cache", "the session");
    }

    /// <summary>
    /// Step-level control: the allocation-free path for latency-critical hosts. Resets the session's KV cache:
    /// a generator made earlier on this session becomes stale and throws on its next step.
    /// </summary>
    public Generator CreateGenerator(GenerationRequest request) => new(_backend, _guard, Plan(request), request);

    /// <summary>Runs the whole generation into <paramref name="destination"/> (at least plan.TokenCount long); returns the token count.</summary>
    public int Generate(GenerationRequest request, Span<int> destination, IProgress<GenerationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        _guard.BeginRun();
        try
        {
            var generator = CreateGenerator(request);
            var plan = generator.Plan;
            if (destination.Length < plan.TokenCount)
                throw new ArgumentException($"destination holds {destination.Length} tokens, the generation produces {plan.TokenCount}", nameof(destination));
            int written = 0;
            while (!generator.IsComplete)
            {
                cancellationToken.ThrowIfCancellationRequested();
                written += generator.Step(destination[written..]);
                progress?.Report(new GenerationProgress(generator.StepIndex, plan.Steps, written, plan.TokenCount));
            }
            return written;
        }
        finally
        {
            _guard.EndRun();
        }
    }

    /// <summary>Streams the generation block by block; each step runs on the thread pool.</summary>
    public async IAsyncEnumerable<GeneratedBlock> GenerateAsync(GenerationRequest request, IProgress<GenerationProgress>? progress = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        _guard.BeginRun();
        try
        {
            var generator = CreateGenerator(request);
            var plan = generator.Plan;
            int written = 0;
            var buffer = new int[plan.BlockSize];
            while (!generator.IsComplete)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int step = generator.StepIndex;
                int count = await Task.Run(() => generator.Step(buffer), cancellationToken).ConfigureAwait(false);
                var block = new GeneratedBlock(step, written, buffer.AsSpan(0, count).ToArray());
                written += count;
                progress?.Report(new GenerationProgress(generator.StepIndex, plan.Steps, written, plan.TokenCount));
                yield return block;
            }
        }
        finally
        {
            _guard.EndRun();
        }
    }

    /// <summary>Rows of logits the last step sampled from ([rows, vocab] after <see cref="CopyLogits"/>).</summary>
    public int LogitRows => _backend.LogitRowsOf(0);

    /// <summary>Copies the logits the last step sampled from, [LogitRows, vocab].</summary>
    public void CopyLogits(Span<float> destination)
    {
        lock (_guard.Gate)
        {
            ObjectDisposedException.ThrowIf(_guard.Disposed, this);
            _backend.CopyLogits(0, destination);
        }
    }

    /// <summary>
    /// Managed bytes allocated by the session's own worker threads so far. Together with the caller's
    /// GC.GetAllocatedBytesForCurrentThread it shows whether a step allocated anything. Null on the ILGPU
    /// backends, whose kernels run on threads the session does not own.
    /// </summary>
    public long? WorkerAllocatedBytes => _backend.OwnThreadsAllocatedBytes;

    /// <summary>Frees the KV cache; waits for a step in flight to finish first. Every later call throws ObjectDisposedException.</summary>
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
