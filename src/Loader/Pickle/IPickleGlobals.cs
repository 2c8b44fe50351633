namespace NbpEngine.Loader.Pickle;

/// <summary>
/// What a pickle may name and call. <see cref="PickleMachine"/> asks this for every global, call and persistent
/// id; an implementation emulates each allowed global in C# (nothing is imported or executed) and throws
/// <see cref="InvalidDataException"/> to refuse, which the machine reports with the opcode's offset.
/// </summary>
public interface IPickleGlobals
{
    /// <summary>GLOBAL / STACK_GLOBAL: admits (<paramref name="module"/>, <paramref name="name"/>) exactly, or throws.</summary>
    PyGlobal Resolve(string module, string name);

    /// <summary>REDUCE: <paramref name="callable"/>(*<paramref name="args"/>).</summary>
    object? Call(PyGlobal callable, PyTuple args);

    /// <summary>NEWOBJ: <paramref name="type"/>.__new__(<paramref name="type"/>, *<paramref name="args"/>).</summary>
    object? New(PyGlobal type, PyTuple args);

    /// <summary>BINPERSID: the object a persistent id stands for (a storage, for PyTorch).</summary>
    object? PersistentLoad(object? id);
}
