namespace NbpEngine.Loader.Pickle;

/// <summary>
/// Python's dict-key equality over the machine's values: bools and integral floats equal the integers they
/// stand for, tuples compare item by item; lists, dicts and objects are unhashable.
/// </summary>
public sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    private static object Normalize(object? key) => key switch
    {
        null or PyNone => PyNone.Value,
        bool b => b ? 1L : 0L,
        double d when Math.Floor(d) == d && Math.Abs(d) < 9.2e18 => (long)d,
        string or long or double or PyTuple or PyGlobal => key,
        byte[] bytes => new BytesKey(Convert.ToHexString(bytes)),
        _ => throw new InvalidOperationException($"unhashable type {PyRepr.TypeName(key)} used as a dict key"),
    };

    /// <summary>The dictionary key for a Python key: None becomes a stand-in (a .NET dictionary takes no null key).</summary>
    internal static object KeyOf(object? key) => key ?? PyNone.Value;

    public new bool Equals(object? x, object? y) => Normalize(x).Equals(Normalize(y));
    public int GetHashCode(object obj) => Normalize(obj).GetHashCode();

    private sealed record BytesKey(string Hex);

    private sealed class PyNone
    {
        public static readonly PyNone Value = new();
    }
}
