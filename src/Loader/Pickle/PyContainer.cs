namespace NbpEngine.Loader.Pickle;

/// <summary>
/// A Python container built by <see cref="PickleMachine"/>. <see cref="Depth"/> is how deeply containers nest
/// inside it (0 when it holds none), kept as items are added so the machine can bound nesting without walking.
/// </summary>
public abstract class PyContainer
{
    public int Depth { get; private set; }

    internal void Track(object? item)
    {
        if (item is PyContainer inner) Depth = Math.Max(Depth, inner.Depth + 1);
    }
}
