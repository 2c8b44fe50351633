using NbpEngine.Cli;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>nbp-run's contract: outputs, and a non-zero exit with a one-line reason on bad input.</summary>
[Collection(nameof(ConsoleCollection))]
public class CliTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static Task<(int Code, string Stderr)> Run(params string[] args) => CliRunner.Run(args);

    private string[] Base(string model = "frame_model.safetensors", string prompt = "frame_prompt.txt") =>
        ["--weights", Fixtures.PathOf(model), "--prompt-tokens", Fixtures.PathOf(prompt), "--tokens-out", _dir.File("out.txt"), "--quiet"];

    [Fact]
    public async Task WritesTheGeneratedTokensAndTheStepZeroLogits()
    {
        var (code, stderr) = await Run([.. Base(), "--greedy", "--block-size", "4", "--steps", "48", "--logits-out", _dir.File("l.npy"), "--threads", "2"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(Fixtures.Tokens("frame_b4_greedy.txt"), Fixtures.Tokens(_dir.File("out.txt")));
        var (data, shape) = Fixtures.Npy(_dir.File("l.npy"));
        Assert.Equal(new[] { 4, 500 }, shape);
        Assert.Equal(2000, data.Length);
    }

    [Fact]
    public async Task TheIlgpuCpuBackendReproducesTheFixture()
    {
        var (code, stderr) = await Run([.. Base("hybrid_model.safetensors", "hybrid_prompt.txt"), "--greedy", "--backend", "ilgpu-cpu"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("on ilgpu-cpu", stderr);
        Assert.Equal(Fixtures.Tokens("hybrid_greedy.txt"), Fixtures.Tokens(_dir.File("out.txt")));
    }

    [Fact]
    public async Task DefaultsComeFromTheCheckpoint()
    {
        // hybrid checkpoint: mode hybrid, B = 4, one clip of 32 tokens in 11 steps
        var (code, stderr) = await Run([.. Base("hybrid_model.safetensors", "hybrid_prompt.txt"), "--greedy"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Hybrid generation", stderr);
        Assert.Contains("11 steps", stderr);
        Assert.Equal(Fixtures.Tokens("hybrid_greedy.txt"), Fixtures.Tokens(_dir.File("out.txt")));
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["--weights", "/nonexistent/model.safetensors"], "not found" },
        { ["--greedy", "--top-k", "5"], "--greedy cannot be combined" },
        { ["--block-size", "0"], "block size" },
        { ["--steps", "1000"], "positions" },
        { ["--top-p", "1.5"], "top-p" },
        { ["--temperature", "-1"], "temperature" },
        { ["--mode", "hybrid"], "bov" },
        { ["--threads", "0"], "--threads" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public async Task BadInputExitsNonZeroWithOneLineReason(string[] extra, string reason)
    {
        // an option given in extra replaces the base one (a single-valued option may appear once)
        var args = Base().ToList();
        for (int i = 0; i + 1 < extra.Length; i++)
        {
            int at = args.IndexOf(extra[i]);
            if (at >= 0 && extra[i] == "--weights") args.RemoveRange(at, 2);
        }
        var (code, stderr) = await Run([.. args, .. extra]);
        Assert.NotEqual(0, code);
        var errorLines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains("error")).ToList();
        Assert.True(errorLines.Count == 1, stderr);
        Assert.Contains(reason, errorLines[0]);
    }

    [Fact]
    public async Task TemperatureZeroIsGreedy()
    {
        var (code, stderr) = await Run([.. Base(), "--temp", "0", "--block-size", "4", "--steps", "48", "-t", "2"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(Fixtures.Tokens("frame_b4_greedy.txt"), Fixtures.Tokens(_dir.File("out.txt")));
    }

    [Fact]
    public async Task ProgressIsPlainLinesPerPhaseWhenStderrIsNotATerminalAndNothingWithQuiet()
    {
        string[] args = ["-m", Fixtures.PathOf("frame_model.safetensors"), "--prompt-tokens", Fixtures.PathOf("frame_prompt.txt"), "--tokens-out", _dir.File("out.txt"), "--greedy", "-t", "2"];
        var (code, stderr) = await Run(args);
        Assert.True(code == 0, stderr);
        foreach (var line in new[] { "nbp-run: load 100%", "nbp-run: prefill 100%", "nbp-run: steps 11/11 (100%)" }) Assert.Contains(line, stderr);
        File.Delete(_dir.File("out.txt"));
        (code, stderr) = await Run([.. args, "-q"]);
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("%", stderr);
    }

    [Fact]
    public async Task HelpGroupsTheOptionsUnderHeadings()
    {
        var (code, stdout, _) = await CliRunner.RunCapturingOutput("--help");
        Assert.Equal(0, code);
        string[] headings = ["Input and output:", "Words (UCF hybrid model):", "Generation:", "Sampling:", "Backend:", "Model overrides:", "Output control:", "Commands:"];
        var at = headings.Select(h => stdout.IndexOf("\n" + h, StringComparison.Ordinal)).ToArray();
        Assert.All(at, i => Assert.True(i > 0, stdout));
        Assert.Equal(at.Order(), at); // in that order
        Assert.Contains("-m, --weights <WEIGHTS>", stdout);
        Assert.Contains("--temp, --temperature <TEMPERATURE>", stdout);
        Assert.True(stdout.IndexOf("--top-p", StringComparison.Ordinal) > stdout.IndexOf("\nSampling:", StringComparison.Ordinal), stdout);
    }

    [Fact]
    public async Task AFolderGivenAsWeightsIsNamedBeforeLoading()
    {
        // a directory where the weights should be: named as such, exit 2, before anything loads
        var (code, stderr) = await Run("--weights", _dir.Path, "--prompt-tokens", Fixtures.PathOf("frame_prompt.txt"), "--tokens-out", _dir.File("o.txt"));
        Assert.Equal(2, code);
        Assert.Contains("--weights file not found", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public async Task ContradictoryTensorCoreFlagsAreAnInputError()
    {
        var (code, stderr) = await Run([.. Base(), "--tensor-cores", "--no-tensor-cores"]);
        Assert.Equal(2, code);
        Assert.Contains("--tensor-cores and --no-tensor-cores contradict each other", stderr);
        Assert.False(File.Exists(_dir.File("out.txt")));
    }

    [Fact]
    public async Task CudaGraphsOffCudaAreAnInputError()
    {
        var (code, stderr) = await Run([.. Base(), "--backend", "cpu", "--cuda-graphs"]);
        Assert.Equal(2, code);
        Assert.Contains("--cuda-graphs needs --backend cuda (or auto on a machine with a GPU), found --backend cpu", stderr);
        Assert.False(File.Exists(_dir.File("out.txt")));
    }

    [Fact]
    public async Task ABadTokenFileIsNamedWithThePosition()
    {
        File.WriteAllText(_dir.File("p.txt"), "1 2 x 4");
        var (code, stderr) = await Run("--weights", Fixtures.PathOf("frame_model.safetensors"), "--prompt-tokens", _dir.File("p.txt"), "--tokens-out", _dir.File("o.txt"));
        Assert.Equal(2, code);
        Assert.Contains("p.txt: token 2 is 'x'", stderr);
    }

    [Fact]
    public async Task AnOutOfVocabularyPromptIdIsRejected()
    {
        File.WriteAllText(_dir.File("p.txt"), string.Join(' ', Enumerable.Repeat("7", 15)) + " 500");
        var (code, stderr) = await Run("--weights", Fixtures.PathOf("frame_model.safetensors"), "--prompt-tokens", _dir.File("p.txt"), "--tokens-out", _dir.File("o.txt"));
        Assert.Equal(2, code);
        Assert.Contains("prompt id 500 is outside the model vocabulary [0, 500)", stderr);
    }
}
