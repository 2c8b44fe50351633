namespace NbpEngine.Loader.Pickle;

/// <summary>A Python tuple: immutable, hashable when its items are, so it can be a dict key.</summary>
public sealed class PyTuple : PyContainer, IEquatable<PyTuple>
{
    public static readonly PyTuple Empty = new([]);
    public IReadOnlyList<object?> Items { get; }
    public int Count => Items.Count;
    public object? this[int index] => Items[index];

    public PyTuple(object?[] items)
    {
        Items = items;
        foreach (var item in items) Track(item);
    }

    public bool Equals(PyTuple? other) => other is not null && Items.Count == other.Items.Count
        && Items.Zip(other.Items).All(p => PyKeyComparer.Instance.Equals(p.First, p.Second));
    public override bool Equals(object? obj) => obj is PyTuple t && Equals(t);
    public override int GetHashCode() => Items.Aggregate(17, (h, item) => h * 31 + PyKeyComparer.Instance.GetHashCode(item!));
    public override string ToString() => "(" + string.Join(", ", Items.Select(PyRepr.Of)) + (Items.Count == 1 ? ",)" : ")");
}
