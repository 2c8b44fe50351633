using System.Diagnostics;
using NbpEngine.Cli;
using NbpEngine.Loader.IO;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>
/// Nothing lost, nothing silent: every output checked before generation (exit 2, one line, inputs untouched),
/// outputs written whole or not at all, non-finite logits a clear error instead of a wrong token.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public class OutputSafetyTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private string Prompt()
    {
        string prompt = _dir.File("prompt.txt");
        if (!File.Exists(prompt)) File.Copy(Fixtures.PathOf("frame_prompt.txt"), prompt);
        return prompt;
    }

    private async Task<string> RefusedBeforeGeneration(params string[] args)
    {
        var (code, stderr) = await CliRunner.Run(args);
        Assert.True(code == 2, stderr);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, stderr); // no load or step lines: refused before any work
        return lines[0];
    }

    private string[] Generate(params string[] outputs) =>
        ["--weights", Fixtures.PathOf("frame_model.safetensors"), "--prompt-tokens", Prompt(), "--greedy", "--block-size", "16", "--steps", "2", .. outputs];

    [Fact]
    public async Task TokensOutInAMissingFolder() =>
        Assert.Contains("does not exist", await RefusedBeforeGeneration(Generate("--tokens-out", _dir.File("missing/o.txt"))));

    [Fact]
    public async Task TokensOutInAFolderThatTakesNoFiles() =>
        Assert.Contains("cannot create files in /sys", await RefusedBeforeGeneration(Generate("--tokens-out", "/sys/o.txt")));

    [Fact]
    public async Task TokensOutIsAFolder() =>
        Assert.Contains("is a folder", await RefusedBeforeGeneration(Generate("--tokens-out", _dir.Path)));

    [Fact]
    public async Task TokensOutIsThePrompt()
    {
        string prompt = Prompt();
        var before = File.ReadAllBytes(prompt);
        Assert.Contains("is also an input", await RefusedBeforeGeneration(Generate("--tokens-out", prompt)));
        Assert.Equal(before, File.ReadAllBytes(prompt));
    }

    [Fact]
    public async Task LogitsOutIsTheWeights()
    {
        string weights = _dir.File("w.safetensors");
        File.Copy(Fixtures.PathOf("frame_model.safetensors"), weights);
        var before = File.ReadAllBytes(weights);
        var (code, stderr) = await CliRunner.Run("--weights", weights, "--prompt-tokens", Prompt(), "--tokens-out", _dir.File("o.txt"), "--logits-out", weights);
        Assert.Equal(2, code);
        Assert.Contains("is also an input", stderr);
        Assert.Equal(before, File.ReadAllBytes(weights));
    }

    [Fact]
    public async Task TwoOutputsOnOneFile() =>
        Assert.Contains("name the same file", await RefusedBeforeGeneration(Generate("--tokens-out", _dir.File("o.txt"), "--stats-json", _dir.File("o.txt"))));

    [Theory]
    [InlineData("pred.avi", "8", "unknown output type '.avi'")]
    [InlineData("pred.mp4", "0", "--fps must be >= 1")]
    [InlineData("full", "8", "not empty")]
    public async Task DecodeOutputsAreCheckedFirst(string output, string fps, string reason)
    {
        Directory.CreateDirectory(_dir.File("full"));
        File.WriteAllText(_dir.File("full/keep.txt"), "earlier results");
        File.WriteAllText(_dir.File("codes.txt"), string.Join(' ', Enumerable.Repeat(5, 16)));
        string line = await RefusedBeforeGeneration("decode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--tokens", _dir.File("codes.txt"),
            "--latent-size", "4", "--out", _dir.File(output), "--fps", fps);
        Assert.Contains(reason, line);
        Assert.Equal("earlier results", File.ReadAllText(_dir.File("full/keep.txt")));
    }

    [Fact]
    public void AWriteThatFailsHalfWayLeavesTheOldFileAndNoTemporaryOne()
    {
        string path = _dir.File("tokens.txt");
        File.WriteAllText(path, "earlier result");
        Assert.Throws<IOException>(() => OutputPath.WriteAtomically(path, stream =>
        {
            stream.Write(new byte[1000]);
            throw new IOException("disk full (simulated)");
        }));
        Assert.Equal("earlier result", File.ReadAllText(path));
        Assert.Equal(new[] { "tokens.txt" }, Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFramesFolderThatFailsHalfWayIsNotLeftBehind()
    {
        string folder = _dir.File("frames");
        Assert.Throws<IOException>(() => OutputPath.WriteFolderAtomically(folder, temporary =>
        {
            File.WriteAllText(Path.Combine(temporary, "frame_000.png"), "x");
            throw new IOException("interrupted (simulated)");
        }));
        Assert.Empty(Directory.GetFileSystemEntries(_dir.Path));
        OutputPath.WriteFolderAtomically(folder, temporary => File.WriteAllText(Path.Combine(temporary, "frame_000.png"), "x"));
        Assert.Equal(new[] { "frame_000.png" }, Directory.GetFiles(folder).Select(Path.GetFileName));
    }

    [Fact]
    public async Task OutputsAppearWholeWithNoTemporaryFilesLeft()
    {
        var (code, stderr) = await CliRunner.Run(Generate("--tokens-out", _dir.File("o.txt"), "--logits-out", _dir.File("l.npy"), "--stats-json", _dir.File("s.json"), "--quiet"));
        Assert.True(code == 0, stderr);
        Assert.Equal(new[] { "l.npy", "o.txt", "prompt.txt", "s.json" }, Directory.GetFiles(_dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task ANaNWeightIsAClearErrorNotATokenSequence()
    {
        // row 0 of the head: logit id 0
        string weights = EditedModel.Write(_dir.File("nan.safetensors"), t => t["transformer.head.weight"].Data[7] = float.NaN);
        var (loadCode, loadError) = await CliRunner.Run("--weights", weights, "--prompt-tokens", Prompt(), "--tokens-out", _dir.File("o.txt"), "--quiet");
        Assert.Equal(2, loadCode);
        Assert.Contains("tensor 'transformer.head.weight' holds NaN at element 7 [0, 7]", loadError);
        // past the loader's check, the sampler still refuses (the other backends' ids are range-checked by the generator)
        foreach (var sampling in new[] { new[] { "--greedy" }, new[] { "--top-p", "1" }, Array.Empty<string>() })
        {
            var (code, stderr) = await CliRunner.Run(["--weights", weights, "--prompt-tokens", Prompt(), "--tokens-out", _dir.File("o.txt"), "--quiet", "--backend", "cpu",
                "--skip-finite-check", .. sampling]);
            Assert.Equal(2, code);
            Assert.Matches(@"error: step 0, row \d+: logits hold 1 NaN and 0 infinite values \(first at id 0\)", stderr);
            Assert.False(File.Exists(_dir.File("o.txt")));
        }
    }

    public static TheoryData<string[], string> OutOfRangeRequests => new()
    {
        { ["--steps", "268435465"], "positions" },
        { ["--steps", "2147483647", "--block-size", "16"], "positions" },
        { ["--threads", "100000"], "--threads must be in [1, 256]" },
        { ["--resolution", "-64"], "resolution must be a positive multiple of 8" },
        { ["--resolution", "4096"], "up to 1024" },
        { ["--sequence-length", "6"], "sequence_length must be 1 + 4k" },
        { ["--cond-token-num", "-1"], "cond_token_num must be in [0, 400)" },
    };

    [Theory]
    [MemberData(nameof(OutOfRangeRequests))]
    public async Task SizesFromInputAreCheckedNotWrapped(string[] extra, string reason)
    {
        var (code, stderr) = await CliRunner.Run(["--weights", Fixtures.PathOf("frame_model.safetensors"), "--prompt-tokens", Prompt(), "--tokens-out", _dir.File("o.txt"),
            "--quiet", "--greedy", .. extra]);
        Assert.Equal(2, code);
        Assert.Contains(reason, stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public async Task AnEmptyTensorWithAHugeDimensionIsRefusedNotOverflowed()
    {
        string weights = _dir.File("zero.safetensors");
        File.WriteAllBytes(weights, SafetensorsWriter.RawFile(
            "{\"__metadata__\":{\"n_head\":\"4\"},\"transformer.tok_emb.weight\":{\"dtype\":\"F32\",\"shape\":[2147483648,0],\"data_offsets\":[0,0]}," +
            "\"transformer.pos_emb\":{\"dtype\":\"F32\",\"shape\":[1,4,0],\"data_offsets\":[0,0]}}", []));
        var (code, stderr) = await CliRunner.Run("--weights", weights, "--prompt-tokens", Prompt(), "--tokens-out", _dir.File("o.txt"));
        Assert.Equal(2, code);
        Assert.Contains("tensor 'transformer.tok_emb.weight' has shape [2147483648, 0]: dimension 0 exceeds 2147483647", stderr);
    }

    [Theory]
    [InlineData(new[] { "--seed", "-1" }, "for option '--seed' as expected type 'a non-negative integer'", "nbp-run --help")]
    [InlineData(new[] { "--bogus" }, "Unrecognized command or argument '--bogus'", "nbp-run --help")]
    [InlineData(new[] { "--backend", "tpu" }, "Argument 'tpu' not recognized. Must be one of: 'cpu' 'cuda' 'ilgpu-cpu' 'auto'", "nbp-run --help")]
    [InlineData(new[] { "convert", "only-source.ckpt" }, "Required argument 'DEST'", "nbp-run convert --help")]
    public async Task AUsageErrorIsOneLineAndAHintWithExit2(string[] args, string reason, string hint)
    {
        var (code, stderr) = await CliRunner.Run(args);
        Assert.Equal(2, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Contains(reason, lines[0]);
        Assert.Equal($"nbp-run: see '{hint}'", lines[1]);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("30000")]
    [InlineData("100")]
    public async Task EncodeSizeIsBoundedBeforeReadingFrames(string size)
    {
        Directory.CreateDirectory(_dir.File("frames"));
        var (code, stderr) = await CliRunner.Run("encode", "--tokenizer", Fixtures.PathOf("tokenizer_model.safetensors"), "--input", _dir.File("frames"),
            "--tokens-out", _dir.File("codes.txt"), "--size", size, "--frames", "5");
        Assert.Equal(2, code);
        Assert.Contains($"--size must be a multiple of 8 in [8, 1024], found {size}", stderr);
    }

    [Fact]
    public async Task HugeFiniteWeightsAndATinyTemperatureGiveAnErrorOrTheGreedyLimitNeverACrash()
    {
        string weights = EditedModel.Write(_dir.File("huge.safetensors"), t =>
        {
            foreach (var (name, (_, data)) in t)
                if (name.EndsWith("mlp.0.weight", StringComparison.Ordinal)) Array.Fill(data, 1e38f);
        });
        var (code, stderr) = await CliRunner.Run("--weights", weights, "--prompt-tokens", Prompt(), "--tokens-out", _dir.File("o.txt"), "--quiet", "--backend", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("logits hold", stderr);
        (code, stderr) = await CliRunner.Run(Generate("--tokens-out", _dir.File("t.txt"), "--quiet").Where(a => a != "--greedy").Concat(["--temperature", "1e-45"]).ToArray());
        Assert.True(code == 0, stderr);
        var greedy = Fixtures.Tokens("frame_b16_greedy.txt").Take(32);
        Assert.Equal(greedy, Fixtures.Tokens(_dir.File("t.txt")));
    }

    [Fact]
    public async Task AHugePromptFileIsRefusedAfterTheModelsPositions()
    {
        string prompt = _dir.File("huge.txt");
        using (var writer = new StreamWriter(prompt))
            for (int i = 0; i < 200_000; i++) writer.Write("7 ");
        var (code, stderr) = await CliRunner.Run("--weights", Fixtures.PathOf("frame_model.safetensors"), "--prompt-tokens", prompt, "--tokens-out", _dir.File("o.txt"));
        Assert.Equal(2, code);
        Assert.Contains("holds more than 400 tokens (the model has 400 positions)", stderr);
    }

    [Fact]
    public async Task AnInterruptStopsAtAStepBoundaryExits130AndWritesNothing()
    {
        string output = _dir.File("o.txt");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, UseShellExecute = false };
        // NTP on the emulated kernels: slow steps, so the signal lands mid-generation
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "nbp-run.dll"), "--weights", Fixtures.PathOf("frame_model.safetensors"),
                     "--prompt-tokens", Prompt(), "--tokens-out", output, "--backend", "ilgpu-cpu", "--block-size", "1", "--steps", "270", "--greedy" })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        string? line;
        while ((line = await process.StandardError.ReadLineAsync()) is not null && !line.Contains("nbp-run: steps 1/")) { }
        Assert.True(line is not null, "nbp-run ended before its second step");
        using (var kill = Process.Start("kill", [InterruptSignal(), process.Id.ToString()])) await kill.WaitForExitAsync();
        string rest = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == GenerateCommand.Interrupted, $"exit {process.ExitCode}: {rest}");
        Assert.Contains("nbp-run: interrupted; no output written", rest);
        Assert.False(File.Exists(output));
        Assert.Equal(new[] { "prompt.txt" }, Directory.GetFileSystemEntries(_dir.Path).Select(Path.GetFileName));
    }

    /// <summary>
    /// SIGINT, unless this process ignores it: a test run started in the background by a non-interactive shell (`cmd &`)
    /// ignores SIGINT, the child inherits that (POSIX), and .NET keeps an inherited ignore; then SIGTERM, which nbp-run
    /// handles the same way (stop at the next step, exit 130).
    /// </summary>
    private static string InterruptSignal()
    {
        string? ignored = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:"))?.Split(':')[1].Trim();
        bool sigintIgnored = ignored is not null && (Convert.ToUInt64(ignored, 16) & 0x2) != 0;
        return sigintIgnored ? "-TERM" : "-INT";
    }

    [Fact]
    public void TheSamplerRefusesNonFiniteLogitsAndTakesTheLimitOfTinyTemperatures()
    {
        var logits = new float[] { 1f, 3f, 2f, -1f };
        var scaled = new float[4];
        var keys = new ulong[4];
        var tiny = new SamplingSettings(false, 1e-45f, 0, 1f);
        for (float u = 0; u < 1; u += 0.125f) Assert.Equal(1, RowSampler.Sample(logits, tiny, u, scaled, keys));
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
        {
            logits[2] = bad;
            var e = Assert.Throws<NonFiniteLogitsException>(() => RowSampler.Sample(logits, SamplingSettings.GreedyDecoding, 0.5f, scaled, keys));
            Assert.Contains("first at id 2", e.Message);
            Assert.Throws<NonFiniteLogitsException>(() => RowSampler.Sample(logits, new SamplingSettings(false, 1f, 2, 0.9f), 0.5f, scaled, keys));
        }
    }
}
