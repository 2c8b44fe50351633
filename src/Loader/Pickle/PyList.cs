namespace NbpEngine.Loader.Pickle;

/// <summary>A Python list (also stands for a set or frozenset: checkpoints only carry them as data).</summary>
public sealed class PyList : PyContainer
{
    private readonly List<object?> _items = [];
    public IReadOnlyList<object?> Items => _items;

    internal void Add(object? item)
    {
        _items.Add(item);
        Track(item);
    }
}
