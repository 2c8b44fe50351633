using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace NbpEngine.Loader.Pickle;

/// <summary>
/// A pickle interpreter that builds plain data and never runs anything: protocols 0-5 as far as checkpoints
/// use them (the protocol-2 opcodes torch.save writes, protocol 4's framing, memoize and short strings).
/// Every global, call and persistent id goes to an <see cref="IPickleGlobals"/>, which emulates the few it
/// allows. INST, OBJ, EXT*, out-of-band buffers and the text STRING/UNICODE opcodes are refused.
/// Bounded: nesting depth, memo index and size, string and integer lengths (checked against the bytes left
/// before anything is allocated). Errors are <see cref="PickleException"/>s naming the opcode's offset.
/// </summary>
public sealed class PickleMachine
{
    /// <summary>Nesting of containers; real checkpoints stay under 10.</summary>
    public const int MaxDepth = 100;
    /// <summary>Highest memo index and most memo entries.</summary>
    public const int MaxMemo = 1 << 24;
    /// <summary>Longest integer payload (LONG1/LONG4) in bytes: the machine's integers are 64-bit.</summary>
    public const int MaxIntegerBytes = 8;

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);
    private static readonly object Mark = new();

    private readonly IPickleGlobals _globals;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private ReadOnlyMemory<byte> _data;
    private int _pos, _opcodeAt;

    public PickleMachine(IPickleGlobals globals) => _globals = globals;

    /// <summary>Runs <paramref name="pickle"/> to its STOP and returns the object it built.</summary>
    public object? Load(ReadOnlyMemory<byte> pickle)
    {
        _data = pickle;
        _pos = 0;
        _stack.Clear();
        _marks.Clear();
        _memo.Clear();
        while (true)
        {
            _opcodeAt = _pos;
            byte op = ReadByte();
            try
            {
                if (Step(op)) break;
            }
            catch (Exception e) when (e is InvalidDataException or InvalidOperationException or FormatException or OverflowException or DecoderFallbackException)
            {
                throw Fail(e.Message);
            }
        }
        if (_stack.Count != 1 || _marks.Count != 0) throw Fail($"STOP with {_stack.Count} values and {_marks.Count} marks on the stack (expected one value)");
        return _stack[0];
    }

    /// <summary>Runs one opcode; true at STOP.</summary>
    private bool Step(byte op)
    {
        switch (op)
        {
            case 0x80: // PROTO
                byte protocol = ReadByte();
                if (protocol > 5) throw Fail($"pickle protocol {protocol} is newer than 5");
                break;
            case 0x95: // FRAME: an 8-byte length announcing the next frame; nothing to do but check it
                if (ReadUInt64() > (ulong)(_data.Length - _pos)) throw Fail("frame length runs past the end of the pickle");
                break;
            case (byte)'.': return true; // STOP
            case (byte)'(': _marks.Push(_stack.Count); break; // MARK
            case (byte)'0': Pop(); break; // POP
            case (byte)'1': PopMark(); break; // POP_MARK
            case (byte)'2': Push(Peek()); break; // DUP

            case (byte)'N': Push(null); break;
            case 0x88: Push(true); break; // NEWTRUE
            case 0x89: Push(false); break; // NEWFALSE
            case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
            case (byte)'K': Push((long)ReadByte()); break; // BININT1
            case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
            case 0x8a: Push(LittleEndianInteger(ReadByte())); break; // LONG1
            case 0x8b: Push(LittleEndianInteger(ReadLength(BinaryPrimitives.ReadInt32LittleEndian(Take(4))))); break; // LONG4
            case (byte)'I': Push(TextInt(ReadLine())); break; // INT
            case (byte)'L': Push(ParseLong(ReadLine().TrimEnd('L'))); break; // LONG
            case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
            case (byte)'F': Push(double.Parse(ReadLine(), NumberStyles.Float, CultureInfo.InvariantCulture)); break; // FLOAT

            case (byte)'X': Push(Utf8(ReadLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))))); break; // BINUNICODE
            case 0x8c: Push(Utf8(ReadByte())); break; // SHORT_BINUNICODE
            case 0x8d: Push(Utf8(ReadLength(ReadUInt64()))); break; // BINUNICODE8
            // protocol-2 byte strings: torch.load decodes them as UTF-8 text
            case (byte)'T': Push(Utf8(ReadLength(BinaryPrimitives.ReadInt32LittleEndian(Take(4))))); break; // BINSTRING
            case (byte)'U': Push(Utf8(ReadByte())); break; // SHORT_BINSTRING
            case (byte)'B': Push(Take(ReadLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break; // BINBYTES
            case (byte)'C': Push(Take(ReadByte()).ToArray()); break; // SHORT_BINBYTES
            case 0x8e: Push(Take(ReadLength(ReadUInt64())).ToArray()); break; // BINBYTES8

            case (byte)')': Push(PyTuple.Empty); break; // EMPTY_TUPLE
            case (byte)'t': Push(Checked(new PyTuple(PopMark().ToArray()))); break; // TUPLE
            case 0x85: Push(Checked(new PyTuple([Pop()]))); break; // TUPLE1
            case 0x86: { var b = Pop(); var a = Pop(); Push(Checked(new PyTuple([a, b]))); break; } // TUPLE2
            case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(Checked(new PyTuple([a, b, c]))); break; } // TUPLE3
            case (byte)']': Push(new PyList()); break; // EMPTY_LIST
            case (byte)'l': { var list = new PyList(); foreach (var item in PopMark()) list.Add(item); Push(Checked(list)); break; } // LIST
            case (byte)'a': { var item = Pop(); Append(Peek(), item); break; } // APPEND
            case (byte)'e': { var items = PopMark(); var target = Peek(); foreach (var item in items) Append(target, item); break; } // APPENDS
            case (byte)'}': Push(new PyDict()); break; // EMPTY_DICT
            case (byte)'d': { var dict = new PyDict(); SetItems(dict, PopMark()); Push(dict); break; } // DICT
            case (byte)'s': { var value = Pop(); var key = Pop(); SetItems(Peek(), [key, value]); break; } // SETITEM
            case (byte)'u': { var items = PopMark(); SetItems(Peek(), items); break; } // SETITEMS
            case 0x8f: Push(new PyList()); break; // EMPTY_SET (kept as a list: data only)
            case 0x90: { var items = PopMark(); var target = Peek(); foreach (var item in items) Append(target, item); break; } // ADDITEMS
            case 0x91: { var set = new PyList(); foreach (var item in PopMark()) set.Add(item); Push(Checked(set)); break; } // FROZENSET

            case (byte)'p': Memoize(ParseLong(ReadLine())); break; // PUT
            case (byte)'q': Memoize(ReadByte()); break; // BINPUT
            case (byte)'r': Memoize(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))); break; // LONG_BINPUT
            case 0x94: Memoize(_memo.Count); break; // MEMOIZE
            case (byte)'g': Push(Recall(ParseLong(ReadLine()))); break; // GET
            case (byte)'h': Push(Recall(ReadByte())); break; // BINGET
            case (byte)'j': Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET

            case (byte)'c': Push(_globals.Resolve(ReadLine(), ReadLine())); break; // GLOBAL
            case 0x93: // STACK_GLOBAL
            {
                var name = Pop();
                var module = Pop();
                if (module is not string m || name is not string n) throw Fail($"STACK_GLOBAL needs two strings, found {PyRepr.TypeName(module)} and {PyRepr.TypeName(name)}");
                Push(_globals.Resolve(m, n));
                break;
            }
            case (byte)'R': // REDUCE
            {
                var args = Pop();
                var callable = Pop();
                Push(Checked(_globals.Call(AsGlobal(callable, "REDUCE"), AsTuple(args, "REDUCE"))));
                break;
            }
            case 0x81: // NEWOBJ
            {
                var args = Pop();
                var type = Pop();
                Push(Checked(_globals.New(AsGlobal(type, "NEWOBJ"), AsTuple(args, "NEWOBJ"))));
                break;
            }
            case 0x92: // NEWOBJ_EX
            {
                var kwargs = Pop();
                var args = Pop();
                var type = Pop();
                if (kwargs is not PyDict { Count: 0 }) throw Fail("NEWOBJ_EX with keyword arguments is not supported");
                Push(Checked(_globals.New(AsGlobal(type, "NEWOBJ_EX"), AsTuple(args, "NEWOBJ_EX"))));
                break;
            }
            case (byte)'b': { var state = Pop(); Build(Peek(), state); break; } // BUILD
            case (byte)'Q': Push(Checked(_globals.PersistentLoad(Pop()))); break; // BINPERSID

            case (byte)'i': throw Fail("opcode 'i' (INST: instantiate a class by name) is refused");
            case (byte)'o': throw Fail("opcode 'o' (OBJ: instantiate a class from the stack) is refused");
            case 0x82 or 0x83 or 0x84: throw Fail($"opcode 0x{op:x2} (EXT: the copyreg extension registry) is refused");
            case 0x96 or 0x97 or 0x98: throw Fail($"opcode 0x{op:x2} (protocol-5 out-of-band buffer) is refused");
            case (byte)'P': throw Fail("opcode 'P' (text persistent id) is not supported: PyTorch writes BINPERSID");
            case (byte)'S' or (byte)'V': throw Fail($"opcode '{(char)op}' (protocol-0 quoted string) is not supported");
            default: throw Fail($"unknown opcode 0x{op:x2}");
        }
        return false;
    }

    private PickleException Fail(string detail) => new(_opcodeAt, detail);

    private void Push(object? value)
    {
        _stack.Add(value);
    }

    private object? Pop()
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor) throw Fail("stack underflow (an opcode needs a value the stack does not have)");
        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek()
    {
        int floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count <= floor) throw Fail("stack underflow (an opcode needs a value the stack does not have)");
        return _stack[^1];
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Fail("no MARK on the stack");
        int at = _marks.Pop();
        var items = _stack.GetRange(at, _stack.Count - at);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    private T Checked<T>(T value)
    {
        if (value is PyContainer { Depth: > MaxDepth }) throw Fail($"containers nest deeper than {MaxDepth} levels");
        return value;
    }

    private void Append(object? target, object? item)
    {
        if (target is not PyList list) throw Fail($"APPEND to a {PyRepr.TypeName(target)}; only lists are supported");
        list.Add(item);
        Checked(list);
    }

    private void SetItems(object? target, List<object?> items)
    {
        if (target is not PyDict dict) throw Fail($"SETITEM on a {PyRepr.TypeName(target)}; only dicts are supported");
        if (items.Count % 2 != 0) throw Fail("SETITEMS with an odd number of values");
        for (int i = 0; i < items.Count; i += 2)
        {
            if (items[i] is null or bool or long or double or string or byte[] or PyTuple) dict.Set(items[i], items[i + 1]);
            else throw Fail($"unhashable dict key of type {PyRepr.TypeName(items[i])}");
        }
        Checked(dict);
    }

    private void Build(object? target, object? state)
    {
        PyDict? attributes = state as PyDict;
        if (state is PyTuple { Count: 2 } pair && (pair[0] is null or PyDict) && (pair[1] is null or PyDict))
        {
            // (state, slotstate): both set attributes
            attributes = new PyDict();
            foreach (var part in new[] { pair[0], pair[1] })
                if (part is PyDict d) foreach (var (k, v) in d.Entries) attributes.Set(k, v);
        }
        if (attributes is null && state is not null) throw Fail($"BUILD with state of type {PyRepr.TypeName(state)}");
        switch (target)
        {
            case PyObject obj:
                foreach (var (key, value) in attributes?.Entries ?? [])
                {
                    if (key is not string name) throw Fail($"attribute name of type {PyRepr.TypeName(key)}");
                    obj.SetAttribute(name, value);
                }
                Checked(obj);
                break;
            case PyDict dict:
                dict.Attributes = attributes;
                if (attributes is not null) Checked(attributes);
                break;
            default:
                throw Fail($"BUILD on a {PyRepr.TypeName(target)} is not supported");
        }
    }

    private void Memoize(long index)
    {
        if (index < 0 || index >= MaxMemo) throw Fail($"memo index {index} is outside 0..{MaxMemo - 1}");
        if (!_memo.ContainsKey(index) && _memo.Count >= MaxMemo) throw Fail($"more than {MaxMemo} memo entries");
        _memo[index] = Peek();
    }

    private object? Recall(long index)
    {
        if (!_memo.TryGetValue(index, out var value)) throw Fail($"memo index {index} was never stored");
        return value;
    }

    private PyGlobal AsGlobal(object? value, string opcode) =>
        value as PyGlobal ?? throw Fail($"{opcode} on a {PyRepr.TypeName(value)}, not an allowed global");

    private PyTuple AsTuple(object? value, string opcode) =>
        value as PyTuple ?? throw Fail($"{opcode} arguments are a {PyRepr.TypeName(value)}, not a tuple");

    // --- reading -------------------------------------------------------------------------------------------

    private byte ReadByte()
    {
        if (_pos >= _data.Length) throw new PickleException(_pos, "unexpected end of the pickle (no STOP opcode)");
        return _data.Span[_pos++];
    }

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _pos) throw Fail("unexpected end of the pickle (no STOP opcode)");
        var span = _data.Span.Slice(_pos, count);
        _pos += count;
        return span;
    }

    private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

    /// <summary>A length field, checked against the bytes left before anything is allocated.</summary>
    private int ReadLength(long length) => length < 0 || length > _data.Length - _pos
        ? throw Fail($"length {length} runs past the end of the pickle ({_data.Length - _pos} bytes left)")
        : (int)length;

    private int ReadLength(ulong length) => ReadLength(length > long.MaxValue ? -1 : (long)length);

    private string Utf8(int length) => StrictUtf8.GetString(Take(length));

    /// <summary>A newline-terminated ASCII line (text opcodes and GLOBAL's names), at most 1024 bytes.</summary>
    private string ReadLine()
    {
        var rest = _data.Span[_pos..];
        int end = rest[..Math.Min(rest.Length, 1025)].IndexOf((byte)'\n');
        if (end < 0) throw Fail(rest.Length <= 1024 ? "unexpected end of the pickle (a text argument has no newline)" : "text argument has no newline within 1024 bytes");
        string line = StrictUtf8.GetString(rest[..end]);
        _pos += end + 1;
        return line;
    }

    private object TextInt(string line) => line switch
    {
        "00" => false,
        "01" => true,
        _ => ParseLong(line),
    };

    private long ParseLong(string text) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value)
            ? value
            : throw Fail($"integer '{(text.Length > 30 ? text[..30] + "..." : text)}' is not a 64-bit integer");

    private long LittleEndianInteger(int length)
    {
        if (length > MaxIntegerBytes) throw Fail($"integer of {length} bytes is too large (at most {MaxIntegerBytes}: the machine's integers are 64-bit)");
        var bytes = Take(length);
        return length == 0 ? 0 : (long)new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
    }
}
