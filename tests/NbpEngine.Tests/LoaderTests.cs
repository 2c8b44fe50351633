using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Api;
using NbpEngine.Tests.Support;
using NbpEngine.Core;

namespace NbpEngine.Tests;

public class LoaderTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private string WriteRaw(string header, int bufferBytes, string name = "t.safetensors")
    {
        string path = _dir.File(name);
        File.WriteAllBytes(path, SafetensorsWriter.RawFile(header, new byte[bufferBytes]));
        return path;
    }

    private static SafetensorsFormatException Rejects(string path, string rule, params string[] mentions)
    {
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(rule, e.Rule);
        Assert.Contains(path, e.Message);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
        return e;
    }

    [Fact]
    public void ValidFileOpensAndMapsF32InPlace()
    {
        string path = _dir.File("ok.safetensors");
        SafetensorsWriter.Write(path, [("a", [2, 3], [1, 2, 3, 4, 5, 6]), ("b", [1], [7])], new Dictionary<string, string> { ["n_head"] = "4" });
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("4", file.Metadata["n_head"]);
        Assert.True(file.TryGetTensor("a", out var a));
        var values = new float[6];
        file.ReadAsFloat32(a, values);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, values);
    }

    [Fact]
    public void F16AndBF16AreWidenedToF32()
    {
        var halves = new[] { (Half)1.5f, (Half)(-2.25f), (Half)65504f };
        var bf16 = new ushort[] { 0x3FC0, 0xC010, 0x7F80 }; // 1.5, -2.25, +inf
        var buffer = new byte[12];
        for (int i = 0; i < 3; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), BitConverter.HalfToUInt16Bits(halves[i]));
            BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(6 + 2 * i), bf16[i]);
        }
        string path = _dir.File("half.safetensors");
        File.WriteAllBytes(path, SafetensorsWriter.RawFile(
            """{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]}}""", buffer));
        using var file = SafetensorsFile.Open(path);
        var values = new float[3];
        file.TryGetTensor("h", out var h);
        file.ReadAsFloat32(h, values);
        Assert.Equal(new[] { 1.5f, -2.25f, 65504f }, values);
        file.TryGetTensor("b", out var b);
        file.ReadAsFloat32(b, values);
        Assert.Equal(new[] { 1.5f, -2.25f, float.PositiveInfinity }, values);
    }

    [Fact]
    public void FileShorterThanTheLengthField()
    {
        string path = _dir.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Rejects(path, SafetensorsHeader.Rules.FileTooShort, "3 bytes");
    }

    [Fact]
    public void HeaderLengthBeyondTheFile()
    {
        string path = _dir.File("len.safetensors");
        var bytes = SafetensorsWriter.RawFile("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);
        Rejects(path, SafetensorsHeader.Rules.HeaderLength, "1000");
    }

    [Fact]
    public void HeaderLengthOverTheLimit()
    {
        string path = _dir.File("huge.safetensors");
        var bytes = SafetensorsWriter.RawFile("{}", []);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, ulong.MaxValue);
        File.WriteAllBytes(path, bytes);
        Rejects(path, SafetensorsHeader.Rules.HeaderLength, "100000000");
    }

    [Theory]
    [InlineData("[1,2]")]
    [InlineData("{\"a\":")]
    [InlineData("{} trailing")]
    [InlineData("not json")]
    public void HeaderThatIsNotAJsonObject(string header) => Rejects(WriteRaw(header, 0), SafetensorsHeader.Rules.HeaderJson);

    [Fact]
    public void HeaderThatIsNotUtf8()
    {
        string path = _dir.File("utf.safetensors");
        var bytes = SafetensorsWriter.RawFile("{\"x\":1}", []);
        bytes[11] = 0xFF;
        File.WriteAllBytes(path, bytes);
        Rejects(path, SafetensorsHeader.Rules.HeaderJson, "UTF-8");
    }

    [Fact]
    public void DuplicateTensorKeys() => Rejects(WriteRaw(
        """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8),
        SafetensorsHeader.Rules.DuplicateKey, "'a'");

    [Fact]
    public void MissingEntryField() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[1]}}""", 4), SafetensorsHeader.Rules.EntryFields, "'a'");

    [Fact]
    public void UnsupportedDType() => Rejects(WriteRaw("""{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""", 8),
        SafetensorsHeader.Rules.DType, "'a'", "I64");

    [Fact]
    public void NegativeDimension() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4),
        SafetensorsHeader.Rules.Shape, "'a'");

    [Fact]
    public void EndBeforeBegin() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}""", 4),
        SafetensorsHeader.Rules.Offsets, "'a'");

    [Fact]
    public void ShapeAndByteSpanDisagree() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}""", 20),
        SafetensorsHeader.Rules.SizeMismatch, "'a'", "24", "20");

    [Fact]
    public void ShapeWhoseByteCountOverflows() => Rejects(WriteRaw(
        """{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", 4), SafetensorsHeader.Rules.SizeMismatch, "overflows");

    [Fact]
    public void GapBetweenTensors() => Rejects(WriteRaw(
        """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12),
        SafetensorsHeader.Rules.Layout, "'b'", "gap");

    [Fact]
    public void OverlappingTensors() => Rejects(WriteRaw(
        """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8),
        SafetensorsHeader.Rules.Layout, "overlaps");

    [Fact]
    public void FirstTensorNotAtZero() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8),
        SafetensorsHeader.Rules.Layout, "'a'");

    [Fact]
    public void BufferLongerThanTheTensors() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 8),
        SafetensorsHeader.Rules.BufferLength, "8 bytes");

    [Fact]
    public void TruncatedBuffer() => Rejects(WriteRaw("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 10),
        SafetensorsHeader.Rules.BufferLength, "16", "10");

    [Fact]
    public void MetadataValueThatIsNotAString() => Rejects(WriteRaw("""{"__metadata__":{"n_head":4}}""", 0),
        SafetensorsHeader.Rules.Metadata, "n_head");

    /// <summary>A header length just under the 100 MB limit in a 100-byte file is rejected before anything that size is allocated.</summary>
    [Fact]
    public void AClaimedHeaderLengthIsNeverAllocatedBeforeItIsChecked()
    {
        string path = _dir.File("claims.safetensors");
        var bytes = new byte[100];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 99_999_999);
        File.WriteAllBytes(path, bytes);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Rejects(path, SafetensorsHeader.Rules.HeaderLength, "99999999");
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20, "rejecting the file allocated a megabyte or more");
    }

    /// <summary>Random byte flips and truncations of a real checkpoint: a clear format error or a clean load, never a crash,
    /// and never more managed memory than the file's size (plus parser bookkeeping).</summary>
    [Fact]
    public void CorruptedAndTruncatedFilesNeverCrash()
    {
        var original = File.ReadAllBytes(Fixtures.PathOf("hybrid_model.safetensors"));
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        var rng = new Random(1);
        string path = _dir.File("fuzz.safetensors");
        for (int trial = 0; trial < 300; trial++)
        {
            var bytes = original.ToArray();
            if (trial % 3 == 0) bytes = bytes[..rng.Next(0, headerEnd + 64)];
            else
                for (int flips = 0; flips < 1 + trial % 4; flips++)
                    bytes[rng.Next(0, Math.Min(bytes.Length, headerEnd + 16))] = (byte)rng.Next(256);
            File.WriteAllBytes(path, bytes);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                SafetensorsFile.Open(path).Dispose();
            }
            catch (SafetensorsFormatException)
            {
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated <= bytes.Length + (256 << 10), $"trial {trial}: {allocated} bytes allocated for a {bytes.Length}-byte file");
        }
    }

    private string WriteTinyModel(Action<Dictionary<string, (long[] Shape, float[] Data)>>? edit = null, Dictionary<string, string>? metadata = null) =>
        EditedModel.Write(_dir.File("model.safetensors"), edit, metadata);

    [Fact]
    public async Task MisShapedKeyNamesTheKeyTheExpectedAndTheFoundShape()
    {
        string path = WriteTinyModel(t => t["transformer.blocks.1.attn.key.weight"] = ([96, 95], new float[96 * 95]));
        var e = await Assert.ThrowsAsync<WeightShapeException>(() => NbpModel.LoadAsync(path));
        Assert.Contains("transformer.blocks.1.attn.key.weight", e.Message);
        Assert.Contains("[96, 95]", e.Message);
        Assert.Contains("[96, 96]", e.Message);
    }

    [Fact]
    public async Task MissingKeyIsNamed()
    {
        string path = WriteTinyModel(t => t.Remove("transformer.ln_f.bias"));
        var e = await Assert.ThrowsAsync<WeightShapeException>(() => NbpModel.LoadAsync(path));
        Assert.Contains("transformer.ln_f.bias", e.Message);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public async Task HeadCountMustComeFromMetadataOrTheCaller()
    {
        var meta = new Dictionary<string, string> { ["token_number_per_step"] = "16" };
        string path = WriteTinyModel(metadata: meta);
        var e = await Assert.ThrowsAsync<ModelConfigException>(() => NbpModel.LoadAsync(path));
        Assert.Contains("n_head", e.Message);
        using var model = await NbpModel.LoadAsync(path, new NbpModelOptions { Overrides = new ModelConfigOverrides { HeadCount = 4 } });
        Assert.Equal(4, model.Config.HeadCount);
        Assert.Equal(24, model.Config.HeadSize);
    }

    [Fact]
    public async Task ShapesWinOverMetadataAndUnknownKeysAreIgnored()
    {
        var meta = new Dictionary<string, string> { ["n_head"] = "4", ["n_embd"] = "1536", ["n_layer"] = "24", ["hybrid"] = "False" };
        string path = WriteTinyModel(t => t["something.else"] = ([2], [1, 2]), meta);
        using var model = await NbpModel.LoadAsync(path);
        Assert.Equal(96, model.Config.EmbeddingSize);
        Assert.Equal(2, model.Config.LayerCount);
        Assert.False(model.Config.Hybrid);
    }

    [Fact]
    public void ConfigReadsTheHybridLayout()
    {
        using var file = SafetensorsFile.Open(Fixtures.PathOf("hybrid_model.safetensors"));
        var config = ModelConfigReader.Read(file, null, NullLogger.Instance);
        Assert.True(config.Hybrid);
        Assert.Equal(4, config.BlockSize);
        Assert.Equal(20, config.ConditionVocabSize);
        Assert.Equal(24, config.VideoIdOffset);
        Assert.Equal(32, config.VideoTokenCount);
    }
}
