namespace NbpEngine.Loader.Pickle;

/// <summary>An instance of an allowed plain-data class (argparse.Namespace): its class and its attributes.</summary>
public sealed class PyObject(PyGlobal type) : PyContainer
{
    public PyGlobal Type { get; } = type;
    public PyDict Attributes { get; } = new();

    internal void SetAttribute(string name, object? value)
    {
        Attributes.Set(name, value);
        Track(Attributes);
    }
}
