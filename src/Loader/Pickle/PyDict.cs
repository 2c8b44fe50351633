namespace NbpEngine.Loader.Pickle;

/// <summary>
/// A Python dict or collections.OrderedDict: insertion-ordered, a repeated key replaces the value in place
/// (as Python does), keys compared the Python way (1 == 1.0 == True). <see cref="Attributes"/> holds what a
/// BUILD opcode set on it (an OrderedDict's <c>_metadata</c>, for example).
/// </summary>
public sealed class PyDict : PyContainer
{
    private readonly List<KeyValuePair<object?, object?>> _entries = [];
    private readonly Dictionary<object, int> _index = new(PyKeyComparer.Instance);

    public IReadOnlyList<KeyValuePair<object?, object?>> Entries => _entries;
    public int Count => _entries.Count;
    public PyDict? Attributes { get; internal set; }

    internal void Set(object? key, object? value)
    {
        if (_index.TryGetValue(PyKeyComparer.KeyOf(key), out int at)) _entries[at] = new(_entries[at].Key, value);
        else
        {
            _index.Add(PyKeyComparer.KeyOf(key), _entries.Count);
            _entries.Add(new(key, value));
        }
        Track(key);
        Track(value);
    }

    public bool TryGetValue(string key, out object? value)
    {
        if (_index.TryGetValue(key, out int at))
        {
            value = _entries[at].Value;
            return true;
        }
        value = null;
        return false;
    }

    public bool ContainsKey(string key) => _index.ContainsKey(key);
}
