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
        null => PyNone.Value,
        bool b => b ? 1L : 0L,
        double d when Math.Floor(d) == d && Math.Abs(d) < 9.2e18 => (long)d,
        string or long or double or PyTuple or PyGlobal => key,
        byte[] bytes => Convert.ToHexString(bytes) + "#bytes",
        _ => throw new InvalidOperationException($"unhashable type {PyRepr.TypeName(key)} used as a dict key"),
    };

    public new bool Equals(object? x, object? y) => Normalize(x).Equals(Normalize(y));
    public int GetHashCode(object obj) => Normalize(obj).GetHashCode();

    private sealed class PyNone
    {
        public static readonly PyNone Value = new();
    }
}
