using NbpEngine.Loader.Pickle;

namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>
/// The globals a PyTorch / Lightning / DeepSpeed checkpoint may name, as exact (module, name) pairs, each
/// emulated in C#: nothing is imported, called or constructed in any Python sense. Everything else, including
/// a dotted name that walks from an allowed module to another (protocol 4's 'torch.serialization' +
/// 'os.system'), is refused by name. tools/reference/convert_checkpoint.py carries the same list.
/// </summary>
public sealed class CheckpointAllowList : IPickleGlobals
{
    private const string Utils = "torch._utils";
    private static readonly PyGlobal RebuildTensor = new(Utils, "_rebuild_tensor_v2");
    private static readonly PyGlobal RebuildParameter = new(Utils, "_rebuild_parameter");
    private static readonly PyGlobal OrderedDict = new("collections", "OrderedDict");
    private static readonly PyGlobal Namespace = new("argparse", "Namespace");
    private static readonly PyGlobal Encode = new("_codecs", "encode");

    /// <summary>Every allowed global: the tensor rebuild functions, the storage classes, and the plain-data types checkpoints pickle.</summary>
    public static readonly IReadOnlySet<PyGlobal> Allowed = new HashSet<PyGlobal>(
        new[] { RebuildTensor, RebuildParameter, OrderedDict, Namespace, Encode }
            .Concat(StorageDTypes.ByClassName.Keys.Select(name => new PyGlobal("torch", name))));

    private readonly Func<string, StorageDType, long, TorchStorage> _storage;

    /// <param name="storage">Finds (and checks) the storage behind a persistent id: key, element type, element count.</param>
    public CheckpointAllowList(Func<string, StorageDType, long, TorchStorage> storage) => _storage = storage;

    public PyGlobal Resolve(string module, string name)
    {
        var global = new PyGlobal(module, name);
        if (!Allowed.Contains(global))
            throw new InvalidDataException($"global '{module}.{name}' is not on the allow-list of checkpoint globals; refused, nothing was run");
        return global;
    }

    public object? Call(PyGlobal callable, PyTuple args)
    {
        if (callable == RebuildTensor) return Tensor(args);
        if (callable == RebuildParameter)
        {
            // _rebuild_parameter(data, requires_grad, backward_hooks): the Parameter is its data
            if (args.Count != 3 || args[0] is not TorchTensor data || args[1] is not bool)
                throw new InvalidDataException($"{RebuildParameter} expects (tensor, bool, hooks), found {args}");
            return data;
        }
        if (callable == OrderedDict || callable == Namespace) return New(callable, args);
        if (callable == Encode)
        {
            // protocol 2 writes bytes as _codecs.encode(text, 'latin1'): each character is one byte
            if (args.Count != 2 || args[0] is not string text || args[1] is not ("latin1" or "latin-1") || text.Any(c => c > 0xFF))
                throw new InvalidDataException($"{Encode} is allowed only as encode(text, 'latin1') with Latin-1 text, found {PyRepr.Of(args)}");
            return text.Select(c => (byte)c).ToArray();
        }
        throw new InvalidDataException($"'{callable}' cannot be called (a storage class is only valid inside a persistent id)");
    }

    public object? New(PyGlobal type, PyTuple args)
    {
        if (args.Count != 0) throw new InvalidDataException($"'{type}' is allowed only with no arguments (its contents come by SETITEMS or BUILD), found {PyRepr.Of(args)}");
        if (type == OrderedDict) return new PyDict();
        if (type == Namespace) return new PyObject(Namespace);
        throw new InvalidDataException($"'{type}' cannot be instantiated");
    }

    /// <summary>('storage', torch.&lt;T&gt;Storage, key, location, element count), as torch.save writes a storage reference.</summary>
    public object? PersistentLoad(object? id)
    {
        if (id is not PyTuple { Count: 5 } t || t[0] is not "storage")
            throw new InvalidDataException($"persistent id {PyRepr.Of(id)} is not a storage reference ('storage', type, key, location, count)");
        if (t[1] is not PyGlobal { Module: "torch" } type || !StorageDTypes.ByClassName.TryGetValue(type.Name, out var dtype))
            throw new InvalidDataException($"persistent id names storage type {PyRepr.Of(t[1])}, not a torch storage class");
        if (t[2] is not string key || t[3] is not string || t[4] is not long count || count < 0)
            throw new InvalidDataException($"persistent id {t} is malformed (expected key, location, element count)");
        return _storage(key, dtype, count);
    }

    /// <summary>_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).</summary>
    private static TorchTensor Tensor(PyTuple args)
    {
        if (args.Count is not (6 or 7) || args[0] is not TorchStorage storage || args[1] is not long offset
            || args[2] is not PyTuple size || args[3] is not PyTuple stride || args[4] is not bool)
            throw new InvalidDataException($"{RebuildTensor} expects (storage, offset, size, stride, requires_grad, hooks[, metadata]), found {PyRepr.Of(args)}");
        return new TorchTensor(storage, offset, Longs(size, "size"), Longs(stride, "stride"));
    }

    private static long[] Longs(PyTuple tuple, string what)
    {
        if (tuple.Count > 64) throw new InvalidDataException($"tensor {what} has {tuple.Count} dimensions (at most 64)");
        return tuple.Items.Select(v => v as long? ?? throw new InvalidDataException($"tensor {what} {tuple} holds a {PyRepr.TypeName(v)}")).ToArray();
    }
}
