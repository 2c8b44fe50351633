using System.Text.RegularExpressions;
using NbpEngine.Loader.Pickle;
using NbpEngine.Loader.TorchCheckpoint;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>The pickle interpreter on Python's own output (protocols 1-5), its bounds, and Python's str() of floats.</summary>
public class PickleMachineTests
{
    private static object? Load(string hex) =>
        new PickleMachine(new CheckpointAllowList((_, _, _) => throw new InvalidDataException("no storages here"))).Load(Convert.FromHexString(hex));

    // pickle.dumps({'a': [1, 2.5, True, None, 'xé😀', (1, 2), b'\x00\xff'], 'b': {'c': -7, 'big': 2**40, 'neg': -2**40, 'f': -1e-05}, 'a2': 'dup'}, protocol=N)
    public static TheoryData<int, string> PythonPickles => new()
    {
        { 1, "7d71002858010000006171015d7102284b014740040000000000004930310a4e580700000078c3a9f09f98807103284b014b02747104635f636f646563730a656e636f64650a710528580300000000c3bf710658060000006c6174696e31710774710852710965580100000062710a7d710b28580100000063710c4af9ffffff5803000000626967710d4c313039393531313632373737364c0a58030000006e6567710e4c2d313039393531313632373737364c0a580100000066710f47bee4f8b588e368f17558020000006132711058030000006475707111752e" },
        { 2, "80027d71002858010000006171015d7102284b01474004000000000000884e580700000078c3a9f09f988071034b014b02867104635f636f646563730a656e636f64650a7105580300000000c3bf710658060000006c6174696e31710786710852710965580100000062710a7d710b28580100000063710c4af9ffffff5803000000626967710d8a0600000000000158030000006e6567710e8a060000000000ff580100000066710f47bee4f8b588e368f17558020000006132711058030000006475707111752e" },
        { 3, "80037d71002858010000006171015d7102284b01474004000000000000884e580700000078c3a9f09f988071034b014b02867104430200ff71056558010000006271067d71072858010000006371084af9ffffff580300000062696771098a0600000000000158030000006e6567710a8a060000000000ff580100000066710b47bee4f8b588e368f17558020000006132710c5803000000647570710d752e" },
        { 4, "80049574000000000000007d94288c0161945d94284b01474004000000000000884e8c0778c3a9f09f9880944b014b028694430200ff94658c0162947d94288c0163944af9ffffff8c03626967948a060000000000018c036e6567948a060000000000ff8c01669447bee4f8b588e368f1758c026132948c0364757094752e" },
        { 5, "80059574000000000000007d94288c0161945d94284b01474004000000000000884e8c0778c3a9f09f9880944b014b028694430200ff94658c0162947d94288c0163944af9ffffff8c03626967948a060000000000018c036e6567948a060000000000ff8c01669447bee4f8b588e368f1758c026132948c0364757094752e" },
    };

    [Theory]
    [MemberData(nameof(PythonPickles))]
    public void ReadsWhatPythonWrites(int protocol, string hex)
    {
        var root = Assert.IsType<PyDict>(Load(hex));
        Assert.Equal(new object[] { "a", "b", "a2" }, root.Entries.Select(e => e.Key));
        Assert.True(root.TryGetValue("a", out var a), $"protocol {protocol}");
        var list = Assert.IsType<PyList>(a).Items;
        Assert.Equal(1L, list[0]);
        Assert.Equal(2.5, list[1]);
        Assert.Equal(true, list[2]);
        Assert.Null(list[3]);
        Assert.Equal("xé😀", list[4]);
        Assert.Equal(new PyTuple([1L, 2L]), list[5]);
        Assert.Equal(new byte[] { 0, 0xFF }, list[6]);
        Assert.True(root.TryGetValue("b", out var b));
        var inner = Assert.IsType<PyDict>(b);
        Assert.Equal(new object?[] { -7L, 1L << 40, -(1L << 40), -1e-05 }, inner.Entries.Select(e => e.Value));
    }

    [Fact]
    public void ARepeatedKeyReplacesTheValueInPlaceAndOneEqualsTrue()
    {
        // {'x': 1, 'y': 2} then SETITEM 'x' = 3, then SETITEM True = 'a' and 1 = 'b' (one key in Python)
        var dict = Assert.IsType<PyDict>(Load("80027d28" + "5801000000784b01" + "5801000000794b02" + "75" + "5801000000784b0373" + "8858010000006173" + "4b0158010000006273" + "2e"));
        Assert.Equal(new object[] { "x", "y", true }, dict.Entries.Select(e => e.Key));
        Assert.Equal(new object?[] { 3L, 2L, "b" }, dict.Entries.Select(e => e.Value));
    }

    [Fact]
    public void NoneBytesAndStringsAreDistinctKeys()
    {
        // {None: 1, b'ab': 2, 'ab': 3, None: 4}
        var dict = Assert.IsType<PyDict>(Load("80027d28" + "4e4b01" + "430261624b02" + "580200000061624b03" + "4e4b04" + "752e"));
        Assert.Equal(3, dict.Count);
        Assert.Null(dict.Entries[0].Key);
        Assert.Equal(new object?[] { 4L, 2L, 3L }, dict.Entries.Select(e => e.Value));
    }

    [Fact]
    public void NestingIsBounded()
    {
        string deep = "8002" + string.Concat(Enumerable.Repeat("5d", PickleMachine.MaxDepth + 2)) + string.Concat(Enumerable.Repeat("61", PickleMachine.MaxDepth + 1)) + "2e";
        var e = Assert.Throws<PickleException>(() => Load(deep));
        Assert.Contains("nest deeper", e.Message);
        string fine = "8002" + string.Concat(Enumerable.Repeat("5d", 50)) + string.Concat(Enumerable.Repeat("61", 49)) + "2e";
        Assert.Equal(49, Assert.IsType<PyList>(Load(fine)).Depth);
    }

    [Theory]
    [InlineData("80026a10000000", "memo index 16 was never stored")]
    [InlineData("80025d72ffffff7f2e", "memo index 2147483647 is outside")]
    [InlineData("80048d0000000000000040612e", "runs past the end")]
    [InlineData("8002528a", "stack underflow")]
    [InlineData("80028a09010203040506070809", "too large")]
    [InlineData("80024b01", "no STOP")]
    [InlineData("80024b014b022e", "STOP with 2 values")]
    [InlineData("8006", "protocol 6")]
    [InlineData("8002636f730a73797374656d0a", "global 'os.system' is not on the allow-list")]
    [InlineData("80024b014b02932e", "STACK_GLOBAL needs two strings")]
    public void BrokenPicklesNameTheirFault(string hex, string fragment)
    {
        var e = Assert.Throws<PickleException>(() => Load(hex));
        Assert.Contains(fragment, e.Message);
        Assert.StartsWith("pickle offset ", e.Message);
    }

    [Fact]
    public void ThePythonReferenceConverterCarriesTheSameAllowList()
    {
        string script = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot, "tools", "reference", "convert_checkpoint.py"));
        int start = script.IndexOf("ALLOWED_GLOBALS = {", StringComparison.Ordinal), end = script.IndexOf('}', start);
        var python = Regex.Matches(script[start..end], "\\(\"([\\w.]+)\", \"(\\w+)\"\\)").Select(m => new PyGlobal(m.Groups[1].Value, m.Groups[2].Value)).ToHashSet();
        Assert.True(python.SetEquals(CheckpointAllowList.Allowed), $"Python: {string.Join(", ", python)}; C#: {string.Join(", ", CheckpointAllowList.Allowed)}");
    }

    [Theory]
    [InlineData(4.5e-06, "4.5e-06")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.00012345, "0.00012345")]
    [InlineData(1e-05, "1e-05")]
    [InlineData(0.1, "0.1")]
    [InlineData(100.0, "100.0")]
    [InlineData(-2.5, "-2.5")]
    [InlineData(123456789012345678.0, "1.2345678901234568e+17")]
    [InlineData(3e38, "3e+38")]
    [InlineData(1.7976931348623157e308, "1.7976931348623157e+308")]
    [InlineData(5e-324, "5e-324")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(double.PositiveInfinity, "inf")]
    [InlineData(double.NaN, "nan")]
    public void FloatsPrintAsPythonsRepr(double value, string python) => Assert.Equal(python, PyRepr.Float(value));
}
