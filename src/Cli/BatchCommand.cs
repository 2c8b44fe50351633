using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using NbpEngine.Cli.IO;
using NbpEngine.Cli.Options;
using NbpEngine.Loader.IO;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tokenizer.Text;

using NbpEngine.Pipeline;

namespace NbpEngine.Cli;

/// <summary>
/// <c>nbp-run batch --manifest jobs.jsonl --out DIR</c>: many generations from one loaded model. One JSON object per
/// manifest line; each job's tokens go to DIR/ID.tokens.txt, written whole (temporary file + rename), so a job whose
/// output exists is skipped and a killed run resumes where it stopped; a bad job goes to DIR/failures.jsonl and the
/// rest go on. <c>--shard K/N</c> (or SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT, or JOB_COMPLETION_INDEX with
/// --shard-count) takes the jobs whose manifest line index mod N is K. <c>--batch N</c> steps N jobs together in one
/// <see cref="NbpBatchSession"/> (one weight read per step for all of them; a finished job's slot takes the next job):
/// a job's tokens depend only on the job (its own seed and random stream), never on N or on its neighbours.
/// </summary>
public static partial class BatchCommand
{
    private static readonly HashSet<string> Keys = ["id", "prompt_tokens", "prompt", "class", "input", "seed", "greedy", "top_k", "top_p", "temperature", "steps", "cfg_scale", "cfg_schedule"];

    /// <summary>Exit code when some jobs failed (the others' outputs are written): see DIR/failures.jsonl.</summary>
    public const int SomeJobsFailed = 3;

    private sealed record Job(int Line, string Id, JsonElement Spec);

    public static Command Build()
    {
        var weights = new Option<string>("--weights") { Description = "safetensors checkpoint", Required = true };
        var manifest = new Option<string>("--manifest") { Description = "jobs, one JSON object per line: id, prompt_tokens | prompt | class | input, seed, greedy, top_k, top_p, temperature, steps, cfg_scale, cfg_schedule", Required = true };
        var output = new Option<string>("--out") { Description = "folder for ID.tokens.txt (and ID.frames/ for input jobs) and failures.jsonl (created if missing)", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "video tokenizer for jobs with an input (frames or a video): their conditioning frames are encoded and the prediction decoded to ID.frames/" };
        var batch = new Option<int>("--batch") { Description = "jobs stepped together: each step streams the weights once for all of them", DefaultValueFactory = _ => 1 };
        var shard = new Option<string?>("--shard") { Description = "K/N: take the jobs whose line index mod N is K (default: SLURM_ARRAY_TASK_ID/COUNT or JOB_COMPLETION_INDEX)" };
        var shardCount = new Option<int?>("--shard-count") { Description = "N for Kubernetes indexed jobs (JOB_COMPLETION_INDEX gives K)" };
        var textTokenizer = TextCommands.TextTokenizerOption();
        var greedy = new Option<bool>("--greedy") { Description = "default for jobs that do not say: argmax decoding" };
        var seed = new Option<ulong>("--seed") { Description = "default seed for jobs that do not give one", DefaultValueFactory = _ => 0 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads (default: all cores)" };
        var backend = SharedOptions.Backend();
        var command = new Command("batch", "many generations from one manifest, resumable, sharded for Slurm arrays and Kubernetes indexed jobs")
        {
            weights, manifest, output, tokenizer, batch, shard, shardCount, textTokenizer, greedy, seed, threads, backend,
        };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                return await RunAsync(parse.GetValue(weights)!, parse.GetValue(manifest)!, parse.GetValue(output)!, parse.GetValue(tokenizer), parse.GetValue(batch),
                    Shard(parse.GetValue(shard), parse.GetValue(shardCount)), parse.GetValue(textTokenizer), parse.GetValue(greedy), parse.GetValue(seed),
                    parse.GetValue(threads), SharedOptions.BackendKindOf(parse.GetValue(backend)),
                    ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                Console.Error.WriteLine("nbp-run: interrupted; finished jobs are written, the rest resume on the next run");
                return GenerateCommand.Interrupted;
            }
            catch (Exception e) when (e is CliInputException or OutputPathException or IOException or InvalidDataException or ArgumentException
                                          or NbpEngine.Core.NbpInputException)
            {
                Console.Error.WriteLine($"nbp-run: error: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    /// <summary>(K, N) from --shard, else the scheduler's environment, else (0, 1).</summary>
    internal static (int Index, int Count) Shard(string? option, int? count)
    {
        if (option is not null)
        {
            var m = ShardPattern().Match(option);
            if (!m.Success) throw new CliInputException($"--shard must be K/N, found '{option}'");
            return Checked(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value), "--shard");
        }
        if (Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_ID") is { } slurmId && Environment.GetEnvironmentVariable("SLURM_ARRAY_TASK_COUNT") is { } slurmCount)
            return Checked(int.Parse(slurmId), int.Parse(slurmCount), "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT");
        if (Environment.GetEnvironmentVariable("JOB_COMPLETION_INDEX") is { } k8sIndex)
            return Checked(int.Parse(k8sIndex), count ?? throw new CliInputException("JOB_COMPLETION_INDEX is set: give --shard-count N (the indexed job's completions)"), "JOB_COMPLETION_INDEX/--shard-count");
        return (0, 1);
    }

    private static (int, int) Checked(int index, int count, string source) =>
        count >= 1 && index >= 0 && index < count ? (index, count) : throw new CliInputException($"{source}: shard {index} of {count} is out of range (0 <= K < N)");

    private static async Task<int> RunAsync(string weights, string manifestPath, string output, string? tokenizer, int batch, (int Index, int Count) shard, string? textTokenizer,
        bool greedy, ulong seed, int? threads, BackendKind backend, CancellationToken ct)
    {
        if (batch < 1 || batch > 64) throw new CliInputException($"--batch must be in [1, 64], found {batch}");
        GenerateCommand.CheckThreads(threads);
        if (!File.Exists(manifestPath)) throw new CliInputException($"{manifestPath}: manifest not found");
        Directory.CreateDirectory(output);
        OutputPath.CheckWritable(Path.Combine(output, "failures.jsonl"), weights, manifestPath);
        string failuresPath = Path.Combine(output, "failures.jsonl");
        var failures = new List<string>();
        var jobs = ReadManifest(manifestPath, shard, failures);
        int manifestFailures = failures.Count;
        var todo = jobs.Where(j => !File.Exists(TokensPath(output, j.Id))).ToList();
        Console.Error.WriteLine($"nbp-run: batch: shard {shard.Index}/{shard.Count}: {jobs.Count} jobs, {jobs.Count - todo.Count} already done, {todo.Count} to run, {batch} at a time");

        if (tokenizer is not null && !File.Exists(tokenizer)) throw new CliInputException($"{tokenizer}: --tokenizer file not found");
        using var pipeline = await NbpPipeline.LoadAsync(weights, tokenizer, new PipelineOptions { Backend = backend, Threads = threads }, null, ct);
        var model = pipeline.Model;
        var text = textTokenizer is null ? null : TextPromptTokenizer.Load(textTokenizer);
        int slots = Math.Max(1, Math.Min(batch, todo.Count));
        using var session = model.CreateBatchSession(slots, new SessionOptions { Backend = backend, Threads = threads });
        // every job is checked before any compute: a bad one is a failure line, not a stop
        var requests = new List<GenerationRequest>();
        var runnable = new List<Job>();
        foreach (var job in todo)
        {
            try
            {
                var request = Request(job, pipeline, manifestPath, text, greedy, seed);
                session.Plan(request);
                requests.Add(request);
                runnable.Add(job);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                failures.Add(FailureLine(job.Line, job.Id, e.Message));
            }
        }
        int done = 0, failedJobs = todo.Count - runnable.Count;
        var clock = Stopwatch.StartNew();
        foreach (var result in session.Generate(requests, ct))
        {
            var job = runnable[result.Index];
            try
            {
                if (result.Error is not null) throw result.Error;
                // the frames first: a job whose tokens file exists is done, video and all
                if (Str(job.Spec, "input") is not null)
                {
                    var (video, _, _) = pipeline.DecodePrediction(requests[result.Index].Prompt, result.Tokens!);
                    TokenizerCommands.WriteFrames(Path.Combine(output, job.Id + ".frames"), video.ToRgbFrames(), video.Height, video.Width, 8, null);
                }
                TokenFile.Write(TokensPath(output, job.Id), result.Tokens!, result.Plan.BlockSize, TokenKind.ModelIds, model.Config.VideoIdOffset);
            }
            catch (Exception e) when (e is GenerationException or NbpEngine.Core.NbpInputException or IOException or OutputPathException)
            {
                failures.Add(FailureLine(job.Line, job.Id, e.Message));
                failedJobs++;
            }
            int finished = ++done;
            double perHour = finished / clock.Elapsed.TotalHours;
            Report.Detail($"nbp-run: batch: {finished}/{runnable.Count} jobs, {perHour:F1} videos/hour, ETA {TimeSpan.FromHours((runnable.Count - finished) / perHour):hh\\:mm\\:ss}");
        }
        if (failures.Count > 0) File.AppendAllLines(failuresPath, failures);
        Console.Error.WriteLine($"nbp-run: batch: {todo.Count - failedJobs} of {todo.Count} jobs written to {output} in {clock.Elapsed.TotalSeconds:F1} s" +
                                (failures.Count > 0 ? $"; {failedJobs} jobs failed, {manifestFailures} manifest lines refused (see {failuresPath})" : ""));
        return failures.Count > 0 ? SomeJobsFailed : 0;
    }

    private static string TokensPath(string output, string id) => Path.Combine(output, id + ".tokens.txt");

    private static readonly JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One failures.jsonl record; <paramref name="index"/> is the 0-based manifest line, reported 1-based.</summary>
    private static string FailureLine(int index, string? id, string error) =>
        JsonSerializer.Serialize(new Dictionary<string, object?> { ["line"] = index + 1, ["id"] = id, ["error"] = error }, Readable);

    /// <summary>
    /// The shard's lines (index mod N = K): each a job or a failure (bad JSON, a missing or unsafe id, an unknown key).
    /// Duplicate ids anywhere stop the run: their outputs would collide.
    /// </summary>
    private static List<Job> ReadManifest(string path, (int Index, int Count) shard, List<string> failures)
    {
        var jobs = new List<Job>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            int index = line++;
            bool mine = index % shard.Count == shard.Index;
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonElement spec;
            try
            {
                using var doc = JsonDocument.Parse(text);
                spec = doc.RootElement.Clone();
            }
            catch (JsonException e)
            {
                if (mine) failures.Add(FailureLine(index, null, $"not JSON: {e.Message}"));
                continue;
            }
            if (spec.ValueKind != JsonValueKind.Object || !spec.TryGetProperty("id", out var idValue) || idValue.ValueKind != JsonValueKind.String
                || !SafeId().IsMatch(idValue.GetString()!))
            {
                if (mine) failures.Add(FailureLine(index, null, "each job needs an \"id\": 1-128 letters, digits, '.', '_' or '-', not starting with '.'"));
                continue;
            }
            string id = idValue.GetString()!;
            if (!ids.Add(id)) throw new CliInputException($"{path}: line {index + 1}: id '{id}' appears twice (outputs would collide)");
            var unknown = spec.EnumerateObject().Select(p => p.Name).FirstOrDefault(n => !Keys.Contains(n));
            if (!mine) continue;
            if (unknown is not null)
            {
                failures.Add(FailureLine(index, id, $"unknown key '{unknown}' (known: {string.Join(", ", Keys.Order())})"));
                continue;
            }
            jobs.Add(new Job(index, id, spec));
        }
        return jobs;
    }

    /// <summary>
    /// A manifest job as a request: its prompt (token file, words, class, or conditioning frames encoded by the pipeline's
    /// tokenizer), sampling, seed and steps. Paths are relative to the manifest.
    /// </summary>
    private static GenerationRequest Request(Job job, NbpPipeline pipeline, string manifestPath, TextPromptTokenizer? text, bool defaultGreedy, ulong defaultSeed)
    {
        var s = job.Spec;
        var cfg = pipeline.Model.Config;
        string? promptFile = Str(s, "prompt_tokens"), words = Str(s, "prompt"), className = Str(s, "class"), input = Str(s, "input");
        if ((promptFile is null ? 0 : 1) + (words is null ? 0 : 1) + (className is null ? 0 : 1) + (input is null ? 0 : 1) != 1)
            throw new CliInputException("give exactly one of prompt_tokens, prompt, class, input");
        string folder = Path.GetDirectoryName(Path.GetFullPath(manifestPath))!;
        int[] prompt;
        if (promptFile is not null) prompt = TokenFile.ReadModelIds(Path.Combine(folder, promptFile), cfg, cfg.PositionCount);
        else if (input is not null)
        {
            if (pipeline.Codec is null) throw new CliInputException("a job with an input needs --tokenizer (the video tokenizer)");
            string path = Path.Combine(folder, input);
            if (!File.Exists(path) && !Directory.Exists(path)) throw new CliInputException($"{path}: input not found (a PNG folder or a video file)");
            // the conditioning frames the model's clips start with (5 of K600's 17), at its resolution
            var clip = VideoClip.Read(path, cfg.Resolution, Math.Min(5, cfg.SequenceLength));
            prompt = pipeline.EncodeConditioning(clip).Prompt;
        }
        else prompt = TextCommands.HybridPrompt(words, className, text, PaddingSide.Right, cfg).Prompt;
        bool greedy = Bool(s, "greedy") ?? defaultGreedy;
        var sampling = greedy
            ? SamplingSettings.GreedyDecoding
            : new SamplingSettings(false, (float)(Num(s, "temperature") ?? 1), (int)(Num(s, "top_k") ?? 16000), (float)(Num(s, "top_p") ?? 0.9));
        return new GenerationRequest
        {
            Prompt = prompt, Sampling = sampling, Seed = s.TryGetProperty("seed", out var seedValue) ? seedValue.GetUInt64() : defaultSeed,
            Steps = (int?)Num(s, "steps"),
            GuidanceScale = (float)(Num(s, "cfg_scale") ?? 0),
            GuidanceSchedule = Str(s, "cfg_schedule") switch
            {
                null or "constant" => GuidanceSchedule.Constant,
                "linear" => GuidanceSchedule.Linear,
                var other => throw new CliInputException($"cfg_schedule must be constant or linear, found '{other}'"),
            },
        };
    }

    private static string? Str(JsonElement s, string key) => s.TryGetProperty(key, out var v) ? v.GetString() : null;
    private static bool? Bool(JsonElement s, string key) => s.TryGetProperty(key, out var v) ? v.GetBoolean() : null;
    private static double? Num(JsonElement s, string key) => s.TryGetProperty(key, out var v) ? v.GetDouble() : null;

    [GeneratedRegex(@"^(\d+)/(\d+)$")]
    private static partial Regex ShardPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex SafeId();
}
