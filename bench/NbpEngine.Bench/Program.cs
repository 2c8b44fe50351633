using System.CommandLine;
using System.Globalization;
using NbpEngine.Bench;
using NbpEngine.Core;
using NbpEngine.Parity;
using NbpEngine.Runtime.Backends;

// nbp-bench: the K600 workload end to end (encode 5 frames, generate 768 tokens, decode 17 frames) through
// NbpPipeline for each block size: one table (median and best of -r runs), a chart beside the paper's Figure 7,
// a roofline line per phase, optionally the PyTorch reference on the same files (--torch) and JSON (--json).
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

var weights = new Option<string?>("--weights", "-m") { Description = "transformer safetensors (K600 shapes); with --random-weights, where the random one is written" };
var tokenizer = new Option<string?>("--tokenizer") { Description = "video tokenizer safetensors; with --random-weights, where the random one is written" };
var random = new Option<bool>("--random-weights") { Description = "write (once, into --cache) and use random weights of K600's shapes" };
var quick = new Option<bool>("--quick") { Description = "4 transformer layers instead of 24 and a half-width tokenizer (every shape but the depth)" };
var backend = new Option<string>("--backend", "-b") { Description = "cpu | cuda | ilgpu-cpu | auto", DefaultValueFactory = _ => "auto" };
backend.AcceptOnlyFromAmong("cpu", "cuda", "ilgpu-cpu", "auto");
var deviceWeights = new Option<string>("--device-weights") { Description = "auto (f16 on CUDA, f32 on ilgpu-cpu) | f32 | f16 | bf16 weight storage on an ILGPU device", DefaultValueFactory = _ => "auto" };
deviceWeights.AcceptOnlyFromAmong("auto", "f32", "f16", "bf16");
var tensorCores = new Option<bool>("--tensor-cores") { Description = "ILGPU backends: prefill matmuls and tokenizer convs on tensor cores (default on CUDA)" };
var noTensorCores = new Option<bool>("--no-tensor-cores") { Description = "ILGPU backends: fp32 prefill matmuls and tokenizer convs" };
var blocks = new Option<string>("--blocks") { Description = "block sizes to run, comma-separated", DefaultValueFactory = _ => "1,8,16,32,64,256" };
var threads = new Option<int?>("--threads", "-t") { Description = "CPU threads (default: all cores)" };
var repetitions = new Option<int>("--repetitions", "-r") { Description = "timed runs per block size and per tokenizer phase (after one warm-up); the table shows the median and the best", DefaultValueFactory = _ => 1 };
var outDir = new Option<string>("--out", "-o") { Description = "folder for nbp-bench.md, nbp-bench.png and --json", DefaultValueFactory = _ => Path.Combine("bench", "out") };
var cache = new Option<string?>("--cache") { Description = "folder for random weights (default: --out)" };
var json = new Option<string?>("--json") { Description = "also write every measurement as JSON to this file" };
var torch = new Option<bool>("--torch") { Description = "run the same workload through the PyTorch reference (bench/torch_pipeline.py) and add its table" };
var python = new Option<string>("--python") { Description = "python with torch for --torch", DefaultValueFactory = _ => "/usr/bin/python3" };
var root = new RootCommand("nbp-bench: NBP's K600 frame-prediction workload end to end per block size, against the paper's Figure 7")
{
    weights, tokenizer, random, quick, backend, deviceWeights, tensorCores, noTensorCores, blocks, threads, repetitions, outDir, cache, json, torch, python,
};
root.SetAction((parse, ct) =>
{
    int[] sizes;
    try
    {
        sizes = parse.GetValue(blocks)!.Split(',').Select(b => int.Parse(b, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
    }
    catch (FormatException)
    {
        return Fail($"--blocks must be positive integers separated by commas, found '{parse.GetValue(blocks)}'");
    }
    if (sizes.Length == 0 || sizes.Any(b => b < 1 || K600Workload.GeneratedTokens % b != 0)) return Fail($"--blocks: each must divide the {K600Workload.GeneratedTokens} generated tokens, found {parse.GetValue(blocks)}");
    if (parse.GetValue(repetitions) is < 1 or > 100) return Fail($"--repetitions must be in [1, 100], found {parse.GetValue(repetitions)}");
    if (parse.GetValue(threads) is < 1) return Fail($"--threads must be >= 1, found {parse.GetValue(threads)}");
    if (!parse.GetValue(random) && (parse.GetValue(weights) is null || parse.GetValue(tokenizer) is null))
        return Fail("give --weights and --tokenizer, or --random-weights");
    var settings = new BenchSettings(
        parse.GetValue(weights), parse.GetValue(tokenizer), parse.GetValue(random), parse.GetValue(quick),
        parse.GetValue(backend) switch { "cpu" => BackendKind.Cpu, "cuda" => BackendKind.Cuda, "ilgpu-cpu" => BackendKind.IlgpuCpu, _ => BackendKind.Auto },
        parse.GetValue(deviceWeights) switch { "f32" => WeightStorage.F32, "f16" => WeightStorage.F16, "bf16" => WeightStorage.BF16, _ => null },
        parse.GetValue(tensorCores) ? true : parse.GetValue(noTensorCores) ? false : null, sizes, parse.GetValue(threads) ?? Environment.ProcessorCount, parse.GetValue(repetitions),
        parse.GetValue(outDir)!, parse.GetValue(cache) ?? parse.GetValue(outDir)!, parse.GetValue(json), parse.GetValue(torch), parse.GetValue(python)!);
    return Bench.RunAsync(settings, ct);
});
var guidanceLayers = new Option<int>("--layers") { Description = "transformer layers (the published UCF model has 24; the cost ratio hardly depends on depth)", DefaultValueFactory = _ => 4 };
var guidanceScale = new Option<float>("--cfg-scale") { Description = "guidance scale of the guided runs", DefaultValueFactory = _ => 1.5f };
var guidanceSteps = new Option<int>("--nbp-steps") { Description = "NBP steps per run after the 16 NTP steps", DefaultValueFactory = _ => 8 };
var guidanceCommand = new Command("guidance", "what classifier-free guidance costs per step: the UCF workload with and without it, alternately in one process")
{
    guidanceLayers, guidanceScale, guidanceSteps, backend, threads, repetitions, outDir, cache,
};
guidanceCommand.SetAction((parse, ct) =>
{
    if (parse.GetValue(repetitions) is < 1 or > 100) return Fail($"--repetitions must be in [1, 100], found {parse.GetValue(repetitions)}");
    if (parse.GetValue(guidanceLayers) is < 1 or > 48) return Fail($"--layers must be in [1, 48], found {parse.GetValue(guidanceLayers)}");
    if (parse.GetValue(guidanceSteps) is < 1 or > 64) return Fail($"--nbp-steps must be in [1, 64], found {parse.GetValue(guidanceSteps)}");
    return GuidanceBench.RunAsync(parse.GetValue(cache) ?? parse.GetValue(outDir)!, parse.GetValue(guidanceLayers),
        parse.GetValue(backend) switch { "cuda" => BackendKind.Cuda, "ilgpu-cpu" => BackendKind.IlgpuCpu, _ => BackendKind.Cpu },
        parse.GetValue(threads) ?? Environment.ProcessorCount, parse.GetValue(repetitions), parse.GetValue(guidanceScale), parse.GetValue(guidanceSteps), ct);
});
root.Subcommands.Add(guidanceCommand);
var result = root.Parse(args);
if (result.Errors.Count > 0)
{
    Console.Error.WriteLine($"nbp-bench: error: {result.Errors[0].Message}");
    Console.Error.WriteLine("nbp-bench: see 'nbp-bench --help'");
    return 2;
}
return await result.InvokeAsync();

static Task<int> Fail(string message)
{
    Console.Error.WriteLine($"nbp-bench: error: {message}");
    return Task.FromResult(2);
}
