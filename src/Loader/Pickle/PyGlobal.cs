namespace NbpEngine.Loader.Pickle;

/// <summary>A global the allow-list admitted (a class or function name, never the thing itself: nothing is imported).</summary>
public sealed record PyGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}
