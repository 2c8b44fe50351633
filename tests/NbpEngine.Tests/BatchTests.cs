using System.Diagnostics;
using NbpEngine.Cli;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>
/// nbp-run batch: the same token files from a whole run, two shards (by option and by Slurm's variables),
/// --batch 3, and a run killed mid-way then resumed; a bad job is reported and the rest go on.
/// </summary>
[Collection(nameof(ConsoleCollection))]
public class BatchTests : IDisposable
{
    private const int Jobs = 10;
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>Ten jobs, sampled with their own seeds and greedy alternately, some with their own top-k / temperature.</summary>
    private string Manifest()
    {
        File.Copy(Fixtures.PathOf("frame_prompt.txt"), _dir.File("prompt.txt"), overwrite: true);
        var lines = Enumerable.Range(0, Jobs).Select(i => i % 2 == 0
            ? $"{{\"id\":\"job-{i}\",\"prompt_tokens\":\"prompt.txt\",\"seed\":{i + 7},\"top_k\":{20 + i},\"temperature\":0.9,\"steps\":6}}"
            : $"{{\"id\":\"job-{i}\",\"prompt_tokens\":\"prompt.txt\",\"greedy\":true,\"steps\":6}}");
        File.WriteAllLines(_dir.File("jobs.jsonl"), lines);
        return _dir.File("jobs.jsonl");
    }

    private async Task<Dictionary<string, string>> Batch(string output, params string[] extra)
    {
        var (code, stderr) = await CliRunner.Run(["batch", "--weights", Fixtures.PathOf("frame_model.safetensors"), "--manifest", Manifest(), "--out", output,
            "--backend", "cpu", "--quiet", .. extra]);
        Assert.True(code == 0, stderr);
        return Outputs(output);
    }

    private static Dictionary<string, string> Outputs(string folder) =>
        Directory.GetFiles(folder, "*.tokens.txt").ToDictionary(f => Path.GetFileName(f), File.ReadAllText);

    [Fact]
    public async Task WholeRunShardsAndBatchesWriteTheSameFiles()
    {
        var whole = await Batch(_dir.File("whole"));
        Assert.Equal(Jobs, whole.Count);
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt").Take(96), Fixtures.Tokens(Path.Combine(_dir.File("whole"), "job-1.tokens.txt")));

        await Batch(_dir.File("shards"), "--shard", "0/2");
        Assert.Equal(Jobs / 2, Outputs(_dir.File("shards")).Count);
        Assert.Equal(whole, await Batch(_dir.File("shards"), "--shard", "1/2"));

        Assert.Equal(whole, await Batch(_dir.File("batched"), "--batch", "3"));

        Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_COUNT", "3");
        try
        {
            foreach (var k in new[] { "0", "1", "2" })
            {
                Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_ID", k);
                await Batch(_dir.File("slurm"));
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_ID", null);
            Environment.SetEnvironmentVariable("SLURM_ARRAY_TASK_COUNT", null);
        }
        Assert.Equal(whole, Outputs(_dir.File("slurm")));
    }

    [Fact]
    public async Task AKilledRunResumesToTheSameFiles()
    {
        var whole = await Batch(_dir.File("whole"));
        string output = _dir.File("killed");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, UseShellExecute = false };
        // the emulated kernels make each job take a while, so the kill lands between jobs or inside one
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "nbp-run.dll"), "batch", "--weights", Fixtures.PathOf("frame_model.safetensors"),
                     "--manifest", Manifest(), "--out", output, "--backend", "ilgpu-cpu", "--quiet" })
            psi.ArgumentList.Add(a);
        using (var process = Process.Start(psi)!)
        {
            var deadline = DateTime.UtcNow.AddMinutes(3);
            while (!Directory.Exists(output) || Directory.GetFiles(output, "*.tokens.txt").Length == 0)
            {
                if (process.HasExited) Assert.Fail("nbp-run batch ended before writing anything: " + process.StandardError.ReadToEnd());
                Assert.True(DateTime.UtcNow < deadline, "no output within 3 minutes");
                await Task.Delay(50);
            }
            using (var kill = Process.Start("kill", ["-KILL", process.Id.ToString()])) await kill.WaitForExitAsync();
            await process.WaitForExitAsync();
        }
        var partial = Outputs(output);
        Assert.InRange(partial.Count, 1, Jobs - 1);
        // what was written is complete; greedy jobs equal the CPU's (sampled ones may differ across backends, so compare the greedy)
        foreach (var (name, text) in partial.Where(p => int.Parse(p.Key.Split('-', '.')[1]) % 2 == 1)) Assert.Equal(whole[name], text);
        foreach (var name in partial.Keys.Where(n => int.Parse(n.Split('-', '.')[1]) % 2 == 0)) File.Delete(Path.Combine(output, name));
        Assert.Equal(whole, await Batch(output));
        Assert.Empty(Directory.GetFiles(output, ".*"));
    }

    [Fact]
    public async Task ABadJobIsReportedAndTheRestGoOn()
    {
        File.Copy(Fixtures.PathOf("frame_prompt.txt"), _dir.File("prompt.txt"));
        File.WriteAllLines(_dir.File("jobs.jsonl"), [
            "{\"id\":\"ok\",\"prompt_tokens\":\"prompt.txt\",\"greedy\":true,\"steps\":2}",
            "this is not json",
            "{\"id\":\"../escape\",\"prompt_tokens\":\"prompt.txt\"}",
            "{\"id\":\"missing\",\"prompt_tokens\":\"nowhere.txt\"}",
            "{\"id\":\"typo\",\"prompt_tokens\":\"prompt.txt\",\"top-k\":5}",
        ]);
        var (code, stderr) = await CliRunner.Run("batch", "--weights", Fixtures.PathOf("frame_model.safetensors"), "--manifest", _dir.File("jobs.jsonl"),
            "--out", _dir.File("out"), "--backend", "cpu");
        Assert.Equal(BatchCommand.SomeJobsFailed, code);
        Assert.Contains("1 of 2 jobs written", stderr);
        Assert.Equal(new[] { "ok.tokens.txt" }, Outputs(_dir.File("out")).Keys);
        var failures = File.ReadAllLines(_dir.File("out/failures.jsonl"));
        Assert.Equal(4, failures.Length);
        Assert.Contains("\"line\":2", failures[0]);
        Assert.Contains("1-128 letters", failures[1]);
        Assert.Contains("nowhere.txt: token file not found", string.Join('\n', failures));
        Assert.Contains("unknown key 'top-k'", string.Join('\n', failures));
    }

    [Fact]
    public async Task DuplicateIdsAndBadShardsAreRefusedUpFront()
    {
        File.WriteAllLines(_dir.File("dup.jsonl"), ["{\"id\":\"a\",\"prompt_tokens\":\"p.txt\"}", "{\"id\":\"a\",\"prompt_tokens\":\"p.txt\"}"]);
        var (code, stderr) = await CliRunner.Run("batch", "--weights", Fixtures.PathOf("frame_model.safetensors"), "--manifest", _dir.File("dup.jsonl"), "--out", _dir.File("o"));
        Assert.Equal(2, code);
        Assert.Contains("id 'a' appears twice", stderr);
        (code, stderr) = await CliRunner.Run("batch", "--weights", Fixtures.PathOf("frame_model.safetensors"), "--manifest", _dir.File("dup.jsonl"), "--out", _dir.File("o"), "--shard", "2/2");
        Assert.Equal(2, code);
        Assert.Contains("shard 2 of 2 is out of range", stderr);
    }

    /// <summary>Jobs with conditioning frames: encoded by --tokenizer, generated in the batch, decoded to ID.frames/ (17 frames and strip.png).</summary>
    [Fact]
    public async Task InputJobsPredictFramesAsThePipelineDoes()
    {
        string weights = TinyModels.FullVocabulary(_dir.File("tiny.safetensors")), tokenizer = Fixtures.PathOf("tokenizer_model.safetensors");
        VideoTests.WriteFixtureFrames(_dir.File("clip"), 5, size: 64);
        File.WriteAllLines(_dir.File("video.jsonl"), [
            "{\"id\":\"a\",\"input\":\"clip\",\"seed\":3}",
            "{\"id\":\"b\",\"input\":\"clip\",\"greedy\":true}",
            "{\"id\":\"c\",\"input\":\"no-such-clip\"}",
        ]);
        string output = _dir.File("out");
        var (code, stderr) = await CliRunner.Run("batch", "--weights", weights, "--tokenizer", tokenizer, "--manifest", _dir.File("video.jsonl"), "--out", output,
            "--batch", "2", "--backend", "cpu", "--quiet");
        Assert.True(code == BatchCommand.SomeJobsFailed, stderr);
        Assert.Contains("no-such-clip: input not found", File.ReadAllText(Path.Combine(output, "failures.jsonl")));

        using var pipeline = await NbpEngine.Pipeline.NbpPipeline.LoadAsync(weights, tokenizer, new NbpEngine.Pipeline.PipelineOptions { Backend = NbpEngine.Runtime.Backends.BackendKind.Cpu, Threads = 2 });
        var clip = NbpEngine.Pipeline.VideoClip.Read(_dir.File("clip"), 64, 5);
        foreach (var (id, request) in new[]
                 {
                     ("a", new NbpEngine.Runtime.Generation.GenerationRequest { Prompt = [], Seed = 3, Sampling = NbpEngine.Runtime.Sampling.SamplingSettings.Published }),
                     ("b", new NbpEngine.Runtime.Generation.GenerationRequest { Prompt = [] }),
                 })
        {
            var prediction = pipeline.PredictFrames(clip, request);
            Assert.Equal(prediction.Generation.Tokens, Fixtures.Tokens(Path.Combine(output, id + ".tokens.txt")));
            var frames = Directory.GetFiles(Path.Combine(output, id + ".frames"), "*.png").Select(Path.GetFileName).Order().ToArray();
            Assert.Equal(18, frames.Length); // 5 conditioning + 12 predicted frames, and strip.png
            Assert.Contains("strip.png", frames);
        }
        Assert.Equal(["a.tokens.txt", "b.tokens.txt"], Outputs(output).Keys.Order());
    }
}
