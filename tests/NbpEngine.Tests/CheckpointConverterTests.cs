using System.Security.Cryptography;
using System.Text.Json;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Loader.TorchCheckpoint;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>
/// <c>nbp-run convert</c> against the reference converter's outputs (tests/fixtures/checkpoints, made by
/// tools/reference/make_checkpoint_fixtures.py), and the malicious corpus (tests/fixtures/malicious, made by
/// tools/reference/make_malicious_checkpoints.py): every file refused with exit 2, one line, nothing created.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public class CheckpointConverterTests : IDisposable
{
    private const string RegenerateCheckpoints = "/usr/bin/python3 tools/reference/make_checkpoint_fixtures.py";
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static string Checkpoint(string name) => Fixtures.PathOf(Path.Combine("checkpoints", name));
    private static string Malicious(string name) => Fixtures.PathOf(Path.Combine("malicious", name));

    private static JsonElement Cases(string folder, string file) =>
        JsonDocument.Parse(File.ReadAllText(Fixtures.PathOf(Path.Combine(folder, file)))).RootElement.GetProperty("cases");

    public static TheoryData<string> ConversionCases() => new(Cases("checkpoints", "checkpoints.json").EnumerateObject().Select(p => p.Name));

    public static TheoryData<string> MaliciousFiles() => new(Cases("malicious", "manifest.json").EnumerateObject().Select(p => p.Name));

    private static string[] ConvertArgs(JsonElement c, string destination)
    {
        var args = new List<string> { "convert", Checkpoint(c.GetProperty("source").GetString()!), destination, "--dtype", c.GetProperty("dtype").GetString()! };
        if (c.GetProperty("no_tokenizer").GetBoolean()) args.Add("--no-tokenizer");
        foreach (var o in c.GetProperty("overrides").EnumerateObject()) args.AddRange(["--" + o.Name.Replace('_', '-'), o.Value.GetString()!]);
        return [.. args];
    }

    [Theory]
    [MemberData(nameof(ConversionCases))]
    public async Task WritesWhatTheReferenceConverterWrites(string name)
    {
        var c = Cases("checkpoints", "checkpoints.json").GetProperty(name);
        string output = _dir.File(name + ".safetensors");
        var (code, stderr) = await CliRunner.Run(ConvertArgs(c, output));
        Assert.True(code == 0, stderr);
        var bytes = File.ReadAllBytes(output);
        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        Assert.True(hash == c.GetProperty("expected_sha256").GetString(), $"{name}: output differs from the reference converter's; fixtures stale? {RegenerateCheckpoints}");
        string expected = Checkpoint(name + ".expected.safetensors");
        if (File.Exists(expected)) Assert.Equal(File.ReadAllBytes(expected), bytes);
        Assert.Equal(new[] { name + ".safetensors" }, Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public async Task AConvertedLightningCheckpointGeneratesTheFixtureTokens()
    {
        string output = _dir.File("frame.safetensors");
        var (code, stderr) = await CliRunner.Run("convert", Checkpoint("lightning_frame.ckpt"), output, "--no-tokenizer");
        Assert.True(code == 0, stderr);
        (code, stderr) = await CliRunner.Run("--weights", output, "--prompt-tokens", Fixtures.PathOf("frame_prompt.txt"), "--tokens-out", _dir.File("tokens.txt"),
            "--greedy", "--block-size", "16", "--steps", "12", "--quiet", "--backend", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), ReadTokens(_dir.File("tokens.txt")));
    }

    [Fact]
    public async Task AConvertedDeepSpeedCheckpointGeneratesTheFixtureTokens()
    {
        var c = Cases("checkpoints", "checkpoints.json").GetProperty("deepspeed_hybrid");
        string output = _dir.File("hybrid.safetensors");
        var (code, stderr) = await CliRunner.Run(ConvertArgs(c, output));
        Assert.True(code == 0, stderr);
        (code, stderr) = await CliRunner.Run("--weights", output, "--prompt-tokens", Fixtures.PathOf("hybrid_prompt.txt"), "--tokens-out", _dir.File("tokens.txt"),
            "--greedy", "--quiet", "--backend", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Equal(Fixtures.Tokens("hybrid_greedy.txt"), ReadTokens(_dir.File("tokens.txt")));
    }

    [Fact]
    public async Task AConvertedTokenizerHoldsTheFixtureTokenizersTensors()
    {
        string output = _dir.File("tokenizer.safetensors");
        var (code, stderr) = await CliRunner.Run("convert", Checkpoint("tokenizer.pt"), output, "--dtype", "f16");
        Assert.True(code == 0, stderr);
        using var converted = SafetensorsFile.Open(output);
        using var original = SafetensorsFile.Open(Fixtures.PathOf("tokenizer_model.safetensors"));
        Assert.Equal("1.0", converted.Metadata["tokenizer_version"]);
        Assert.Equal(original.Tensors.Select(t => t.Name), converted.Tensors.Select(t => t.Name));
        foreach (var t in original.Tensors)
        {
            Assert.True(converted.TryGetTensor(t.Name, out var c));
            Assert.Equal(t.DType, c.DType);
            Assert.Equal(t.Shape, c.Shape);
            float[] a = new float[t.ElementCount], b = new float[c.ElementCount];
            original.ReadAsFloat32(t, a);
            converted.ReadAsFloat32(c, b);
            Assert.Equal(a, b);
        }
    }

    /// <summary>A tokenizer .pt trained at other FSQ levels is converted with --fsq-levels; the engine then quantises with them.</summary>
    [Fact]
    public async Task FsqLevelsAreWrittenAsMetadataAndBadOnesRefusedBeforeWriting()
    {
        string output = _dir.File("tokenizer.safetensors");
        var (code, stderr) = await CliRunner.Run("convert", Checkpoint("tokenizer.pt"), output, "--fsq-levels", "3,3,3,3,3,3");
        Assert.True(code == 0, stderr);
        using (var tokenizer = new NbpEngine.Tokenizer.VideoTokenizer(output)) Assert.Equal(729, tokenizer.CodebookSize);

        string refused = _dir.File("refused.safetensors");
        (code, stderr) = await CliRunner.Run("convert", Checkpoint("tokenizer.pt"), refused, "--fsq-levels", "3,3,3");
        Assert.Equal(2, code);
        Assert.Equal("nbp-run: error: --fsq-levels: expected 6 levels, found 3 ('3,3,3')", stderr.Trim());
        Assert.False(File.Exists(refused));
    }

    [Theory]
    [MemberData(nameof(MaliciousFiles))]
    public async Task EveryMaliciousFileIsRefusedAndNothingIsCreated(string file)
    {
        var manifest = JsonDocument.Parse(File.ReadAllText(Malicious("manifest.json"))).RootElement;
        string marker = manifest.GetProperty("marker").GetString()!;
        string fragment = manifest.GetProperty("cases").GetProperty(file).GetString()!;
        var (code, stderr) = await CliRunner.Run("convert", Malicious(file), _dir.File("out.safetensors"));
        Assert.Equal(2, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, stderr);
        Assert.Contains(fragment, lines[0]);
        Assert.Contains(file, lines[0]);
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
        Assert.False(File.Exists(marker), $"{marker} exists: a payload ran");
    }

    [Fact]
    public async Task ACorruptStorageIsCaughtByItsCrcBeforeAnythingIsWritten()
    {
        var bytes = File.ReadAllBytes(Checkpoint("dtypes.pt"));
        long at;
        using (var zip = StoredZipArchive.Open(Checkpoint("dtypes.pt"))) at = zip.Entries["dtypes/data/0"].DataOffset;
        string corrupt = _dir.File("corrupt.pt");
        bytes[at] ^= 0x40;
        File.WriteAllBytes(corrupt, bytes);
        var (code, stderr) = await CliRunner.Run("convert", corrupt, _dir.File("out.safetensors"));
        Assert.Equal(2, code);
        Assert.Contains("CRC-32", stderr);
        Assert.Equal(new[] { "corrupt.pt" }, Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    public static TheoryData<string, string> BadDestinations => new()
    {
        { "source", "is also an input" },
        { "folder", "is a folder" },
        { "missing", "does not exist" },
        { "extension", "must end in .safetensors" },
    };

    [Theory]
    [MemberData(nameof(BadDestinations))]
    public async Task ABadDestinationIsRefusedBeforeReading(string kind, string reason)
    {
        string source = _dir.File("frame.safetensors");
        File.Copy(Checkpoint("dtypes.pt"), source);
        string destination = kind switch
        {
            "source" => source,
            "folder" => Directory.CreateDirectory(_dir.File("out.safetensors")).FullName,
            "missing" => _dir.File("no/such/folder/out.safetensors"),
            _ => _dir.File("out.bin"),
        };
        var before = File.ReadAllBytes(source);
        var (code, stderr) = await CliRunner.Run("convert", source, destination);
        Assert.Equal(2, code);
        Assert.Contains(reason, stderr);
        Assert.Equal(before, File.ReadAllBytes(source));
    }

    [Fact]
    public async Task AnExistingDestinationIsReplacedWhole()
    {
        string output = _dir.File("out.safetensors");
        File.WriteAllText(output, "old contents");
        var (code, stderr) = await CliRunner.Run("convert", Checkpoint("dtypes.pt"), output);
        Assert.True(code == 0, stderr);
        Assert.Equal(File.ReadAllBytes(Checkpoint("dtypes_f32.expected.safetensors")), File.ReadAllBytes(output));
        Assert.Single(Directory.GetFileSystemEntries(_dir.Path));
    }

    /// <summary>Random byte flips and truncations of a real checkpoint: a clear checkpoint error or a clean conversion, never another exception.</summary>
    [Fact]
    public void CorruptedCheckpointsGiveOnlyCheckpointErrors()
    {
        var original = File.ReadAllBytes(Checkpoint("dtypes.pt"));
        var rng = new Random(7);
        string path = _dir.File("mutant.pt"), output = _dir.File("mutant.safetensors");
        int refused = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            var bytes = (byte[])original.Clone();
            if (trial % 3 == 0) bytes = bytes[..rng.Next(bytes.Length)];
            else for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
            File.WriteAllBytes(path, bytes);
            try
            {
                CheckpointConverter.Convert(path, output, new ConvertOptions());
            }
            catch (CheckpointFormatException)
            {
                refused++;
                Assert.False(File.Exists(output), $"trial {trial}: refused but {output} exists");
            }
            File.Delete(output);
        }
        Assert.True(refused > 200, $"only {refused} of 300 mutants refused");
    }

    private static int[] ReadTokens(string path) =>
        Fixtures.Tokens(path);
}
