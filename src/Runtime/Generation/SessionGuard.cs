namespace NbpEngine.Runtime.Generation;

/// <summary>
/// What keeps a session's native memory safe under misuse. Every step runs under <see cref="Gate"/>, and
/// disposing takes the same lock, so a step in flight finishes before memory is freed and no step starts
/// after. Each new generator gets a fresh <see cref="Epoch"/>: an older generator of the same session (whose
/// cache was reset under it) throws instead of computing with the new generation's state. One generation
/// runs at a time (<see cref="BeginRun"/>).
/// </summary>
internal sealed class SessionGuard
{
    private int _running;

    public object Gate { get; } = new();
    public bool Disposed { get; private set; }
    public int Epoch { get; private set; }

    /// <summary>Starts a new generation epoch (the caller holds <see cref="Gate"/>).</summary>
    public int NextEpoch() => ++Epoch;

    /// <summary>Throws unless the session is alive and <paramref name="epoch"/> is the newest (the caller holds <see cref="Gate"/>).</summary>
    public void Check(int epoch)
    {
        ObjectDisposedException.ThrowIf(Disposed, typeof(Api.NbpSession));
        if (epoch != Epoch)
            throw new InvalidOperationException("this generator is stale: a newer CreateGenerator on the same session reset its KV cache");
    }

    /// <summary>Marks a whole-generation run (Generate / GenerateAsync) as started; a second at the same time throws at once.</summary>
    public void BeginRun()
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
            throw new InvalidOperationException("this session is already generating; one generation at a time per session (make a session per stream)");
    }

    public void EndRun() => Volatile.Write(ref _running, 0);

    /// <summary>Marks the session disposed (the caller holds <see cref="Gate"/>); false if it already was.</summary>
    public bool MarkDisposed()
    {
        if (Disposed) return false;
        Disposed = true;
        return true;
    }
}
