using System.Diagnostics;
using System.Globalization;
using System.Text;
using ILGPU;
using ILGPU.Runtime;

using NbpEngine.Kernels;
using NbpEngine.Kernels.Backend;
using NbpEngine.Kernels.Device;
using NbpEngine.Parity;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tokenizer;
using NbpEngine.Kernels.Tokenizer;
using NbpEngine.Core;
using NbpEngine.Kernels.Sampling;

// nbp-gpu-check: on a CUDA machine, run the kernel parity suite, whole-model parity against the
// PyTorch fixtures, and the K600-shaped timings against the weight-bandwidth floor; write results to --out.
// Usage: nbp-gpu-check --out DIR [--device cuda|ilgpu-cpu] [--skip-bench] [--bench-layers 24]
//        nbp-gpu-check --profile-steps [--device ...] [--bench-layers 24]   (only K600 steps, for Nsight Compute)
//        nbp-gpu-check --sweep-step-gemm [--device ...] [--width 1536]      (the step GEMM's launch shapes, timed)
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string outDir = Arg("--out") ?? "gpu-results";
var kind = Arg("--device") == "ilgpu-cpu" ? IlgpuDeviceKind.Cpu : IlgpuDeviceKind.Cuda;
bool skipBench = args.Contains("--skip-bench");
int benchLayers = int.Parse(Arg("--bench-layers") ?? "24");
if (args.Contains("--profile-steps"))
{
    await ProfileSteps();
    return 0;
}
if (args.Contains("--sweep-step-gemm"))
{
    SweepStepGemm();
    return 0;
}
Directory.CreateDirectory(outDir);
var summary = new StringBuilder();
void Report(string line)
{
    Console.WriteLine(line);
    summary.AppendLine(line);
}

int failures = 0;
using (var device = new IlgpuDevice(kind))
{
    Report($"# nbp-gpu-check {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
    Report($"device: {device.Describe()}, memory {device.Accelerator.MemorySize / (1 << 20)} MiB, launch shape {device.Shape}");
    Report("");
    Report("## Kernel parity (tests/NbpEngine.Parity, device vs CPU backend)");
    using var parity = new KernelParity(device);
    foreach (var result in parity.RunAll())
    {
        Report(result.ToString());
        if (!result.Passed) failures++;
    }
}

Report("");
Report("## Whole-model greedy parity against the PyTorch fixtures");
var backend = kind == IlgpuDeviceKind.Cuda ? BackendKind.Cuda : BackendKind.IlgpuCpu;
string fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
foreach (var (name, model, prompt, mode, block, steps, cond) in new[]
         {
             ("frame_b16", "frame_model", "frame_prompt", GenerationMode.Frame, 16, 12, 0), ("frame_b4", "frame_model", "frame_prompt", GenerationMode.Frame, 4, 48, 0),
             ("frame_ntp", "frame_model", "frame_prompt", GenerationMode.Frame, 1, 192, 0), ("hybrid", "hybrid_model", "hybrid_prompt", GenerationMode.Hybrid, 4, 11, 5),
         })
{
    // fp32 with fused layers (the default) and with the six separate kernels a layer (the same code: the same tokens are
    // required); the last: each step as one CUDA graph launch (same kernels, so the same tokens are required)
    var variants = new List<(WeightStorage, bool, bool, bool)>
    {
        (WeightStorage.F32, false, false, true), (WeightStorage.F32, false, false, false), (WeightStorage.F32, true, false, true), (WeightStorage.F16, false, false, true),
    };
    if (kind == IlgpuDeviceKind.Cuda) variants.Add((WeightStorage.F32, false, true, true));
    foreach (var (storage, tensorCores, graphs, fused) in variants)
    {
        using var m = await NbpModel.LoadAsync(Path.Combine(fixtures, model + ".safetensors"), new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });
        NbpSession session;
        try
        {
            session = m.CreateSession(new SessionOptions { Backend = backend, DeviceWeights = storage, TensorCores = tensorCores, CudaGraphs = graphs, FusedLayers = fused });
        }
        catch (Exception e) when (graphs) // the graph path is new: report, and go on with the rest
        {
            failures++;
            Report($"FAIL {name} (CUDA graphs): {e.GetType().Name}: {e.Message}");
            continue;
        }
        using var _ = session;
        var request = new GenerationRequest
        {
            Prompt = Tokens(Path.Combine(fixtures, prompt + ".txt")), Mode = mode, BlockSize = block, Steps = steps, CondLength = cond,
        };
        var tokens = new int[session.Plan(request).TokenCount];
        try
        {
            session.Generate(request, tokens);
        }
        catch (Exception e) when (graphs)
        {
            failures++;
            Report($"FAIL {name} (CUDA graphs): {e.GetType().Name}: {e.Message}");
            continue;
        }
        var expected = Tokens(Path.Combine(fixtures, name + "_greedy.txt"));
        int same = tokens.Zip(expected).Count(p => p.First == p.Second);
        bool required = storage == WeightStorage.F32 && !tensorCores; // fp16 paths: reported, not required
        if (required && same != expected.Length) failures++;
        Report($"{(same == expected.Length ? "ok  " : required ? "FAIL" : "note")} {name} ({session.BackendName}{(graphs ? ", CUDA graphs" : "")}{(fused ? "" : ", separate kernels")}): {same}/{expected.Length} tokens equal");
    }
}

Report("");
Report("## Tokenizer parity against the PyTorch fixture (narrow tokenizer, 17 frames of 32x32)");
using (var tokenizer = new VideoTokenizer(Path.Combine(fixtures, "tokenizer_model.safetensors")))
{
    // fp32 convs must match exactly as on the CPU; tensor cores (fp16 operands) within the stated 1e-2, codes reported
    foreach (bool tensorCores in new[] { false, true })
    {
        using var deviceTokenizer = new DeviceTokenizer(tokenizer, kind, tensorCores);
        string how = tensorCores ? "tensor cores" : "fp32";
        double bound = tensorCores ? 1e-2 : 1e-4;
        var codes = NpyInts(Path.Combine(fixtures, "tokenizer_codes.npy"));
        var expected = NpyFloats(Path.Combine(fixtures, "tokenizer_decoded.npy"));
        var pixels = deviceTokenizer.Decode(codes, 5, 4, 4);
        double maxDiff = pixels.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
        if (maxDiff > bound) failures++;
        Report($"{(maxDiff <= bound ? "ok  " : "FAIL")} decode on {deviceTokenizer.Name}, {how}: max |diff| {maxDiff:E3} (bound {bound:E0})");
        var video = NpyFloats(Path.Combine(fixtures, "tokenizer_video.npy"));
        var encoded = deviceTokenizer.Encode(video, 17, 32, 32);
        int same = encoded.Zip(codes).Count(p => p.First == p.Second);
        bool required = !tensorCores;
        if (required && same != codes.Length) failures++;
        Report($"{(same == codes.Length ? "ok  " : required ? "FAIL" : "note")} encode on {deviceTokenizer.Name}, {how}: {same}/{codes.Length} codes equal (fixture codes are all >= 7e-4 from a rounding boundary)");
    }
}

if (!skipBench) await Bench();
File.WriteAllText(Path.Combine(outDir, "summary.md"), summary.ToString());
Report($"{failures} failures; results in {outDir}/summary.md");
return failures == 0 ? 0 : 1;

async Task Bench()
{
    Report("");
    Report($"## K600-shaped timings ({benchLayers} layers x 1536, 16 heads, V 64000, 512-token prompt, 768 new tokens, top-k 16000, top-p 0.9)");
    string weights = RandomK600Weights();
    double bandwidth;
    using (var probe = new IlgpuDevice(kind)) bandwidth = probe.CopyBandwidth();
    Report($"device copy bandwidth: {bandwidth / 1e9:F0} GB/s (read + write of a 1 GiB device-to-device copy)");
    using var model = await NbpModel.LoadAsync(weights, new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });
    var prompt = K600Workload.Prompt();
    Report("");
    TokenizerBench();
    Report("");
    Report("| weights | B | steps | prefill ms | mean step ms | total s | weight bytes/step | floor ms/step | step / floor |");
    Report("|---|---|---|---|---|---|---|---|---|");
    // fp16 and fp32 as run by default (each layer one fused launch), fp16 with the six separate kernels a layer, fp16
    // with the step GEMMs on tensor cores (separate kernels), and fp16 with each step as one CUDA graph launch (issue 12)
    var rows = new List<(WeightStorage, bool, bool, bool)>
    {
        (WeightStorage.F16, false, true, false), (WeightStorage.F32, false, true, false), (WeightStorage.F16, false, false, false), (WeightStorage.F16, false, false, true),
    };
    if (kind == IlgpuDeviceKind.Cuda) rows.Add((WeightStorage.F16, true, true, false));
    foreach (var (storage, graphs, fused, mma) in rows)
    {
        long bytesPerElement = storage == WeightStorage.F32 ? 4 : 2;
        long c = 1536;
        long weightBytes = (benchLayers * 12L * c * c + 64000L * c) * bytesPerElement; // every matrix + head, once per step
        double floorMs = weightBytes / bandwidth * 1e3;
        foreach (int block in new[] { 16, 1 })
        {
            try
            {
                TimeSteps(storage, graphs, fused, mma, block, weightBytes, floorMs);
            }
            catch (Exception e) when (graphs)
            {
                failures++;
                Report($"| {storage} graphs | {block} | failed: {e.GetType().Name}: {e.Message} |");
            }
        }
    }

    void TimeSteps(WeightStorage storage, bool graphs, bool fused, bool mma, int block, long weightBytes, double floorMs)
    {
        using var session = model.CreateSession(new SessionOptions
        {
            Backend = backend, DeviceWeights = storage, Capacity = 1280, MaxBlockSize = 16, CudaGraphs = graphs, FusedLayers = fused, TensorCoreSteps = mma,
        });
        var request = K600Request(block, K600Workload.GeneratedTokens / block);
        var warm = session.CreateGenerator(request with { Steps = 2 });
        var scratch = new int[16];
        while (!warm.IsComplete) warm.Step(scratch); // JIT and kernel compilation out of the timing
        var generator = session.CreateGenerator(request);
        var clock = Stopwatch.StartNew();
        generator.Step(scratch);
        double prefill = clock.Elapsed.TotalMilliseconds;
        while (!generator.IsComplete) generator.Step(scratch);
        double total = clock.Elapsed.TotalMilliseconds;
        double step = (total - prefill) / (request.Steps!.Value - 1);
        Report($"| {storage}{(graphs ? " graphs" : "")}{(fused ? "" : " separate kernels")}{(mma ? ", step GEMMs on tensor cores" : "")} | {block} | {request.Steps} | {prefill:F1} | {step:F3} | {total / 1e3:F2} | {weightBytes / 1e6:F0} MB | {floorMs:F3} | {step / floorMs:F2}x |");
    }
    try
    {
        StepAnatomyReport(weights, prompt);
    }
    catch (Exception e) // the timings above are already reported; a profiling failure must not hide them
    {
        Report($"step anatomy failed: {e.GetType().Name}: {e.Message}");
        failures++;
    }
}

// The random K600 transformer the timings and the profile run, written once into the temp folder
string RandomK600Weights()
{
    string path = Path.Combine(Path.GetTempPath(), $"nbp-k600-random-{benchLayers}.safetensors");
    if (!File.Exists(path)) K600Workload.WriteRandomTransformer(path, benchLayers);
    return path;
}

// The benchmark's generation: frame mode from the K600 prompt, top-k 16000, top-p 0.9, seed 1
GenerationRequest K600Request(int block, int steps) => new()
{
    Prompt = K600Workload.Prompt(), Mode = GenerationMode.Frame, BlockSize = block, Steps = steps,
    Sampling = new SamplingSettings(false, 1f, 16000, 0.9f), Seed = 1,
};

// What Nsight Compute profiles (tools/gpu/device-session.sh): K600 steps as the step anatomy runs them (fp16 weights, the
// six separate kernels a layer, B = 16, top-k 16000, top-p 0.9) and nothing else, so ncu's --launch-skip counts the
// step kernels' launches from the first step: per step 24 x (q/k/v, partial, combine, proj, fc, out) + head + sampler
async Task ProfileSteps()
{
    string weights = RandomK600Weights();
    using var model = await NbpModel.LoadAsync(weights, new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });
    using var session = model.CreateSession(new SessionOptions
    {
        Backend = kind == IlgpuDeviceKind.Cuda ? BackendKind.Cuda : BackendKind.IlgpuCpu, DeviceWeights = WeightStorage.F16,
        Capacity = 1280, MaxBlockSize = 16, FusedLayers = false,
    });
    var request = K600Request(16, 4);
    var generator = session.CreateGenerator(request);
    var scratch = new int[16];
    var clock = Stopwatch.StartNew();
    while (!generator.IsComplete) generator.Step(scratch);
    Console.WriteLine($"profiled: {request.Steps} steps (the first with the prefill) of {benchLayers} layers in {clock.Elapsed.TotalSeconds:F1} s, as {session.BackendName}");
}

// Every launch shape of the step GEMM at the K600 widths, B = 1 and 16 (and two blocks, 32 rows), fp16 weights: which group
// size each GEMM should get (StepMatMulKernel.Launch picks one by a rule; this measures them all)
void SweepStepGemm()
{
    int width = int.Parse(Arg("--width") ?? "1536");
    int launches = kind == IlgpuDeviceKind.Cuda ? 200 : 2; // the CPU accelerator only checks that it runs
    using var device = new IlgpuDevice(kind);
    Console.WriteLine($"## Step GEMM launch shapes ({device.Describe()}, fp16 weights, width {width}, {launches} launches each over weight copies past the L2)");
    var clock = Stopwatch.StartNew();
    var timings = NbpEngine.Kernels.Profiling.StepGemmSweep.Measure(device, NbpEngine.Kernels.Profiling.StepGemmSweep.K600Shapes(width), [1, 16, 32], launches);
    foreach (string line in NbpEngine.Kernels.Profiling.StepGemmSweep.Table(timings)) Console.WriteLine(line);
    Console.WriteLine();
    Console.WriteLine("A rule from these timings (one K split per GEMM for every row count, so a row's bits do not depend on its batch):");
    var choices = NbpEngine.Kernels.Profiling.StepGemmSweep.Choose(timings);
    foreach (string line in NbpEngine.Kernels.Profiling.StepGemmSweep.ChoiceTable(choices, layers: 24)) Console.WriteLine(line);
    Console.WriteLine();
    Console.WriteLine("The same on tensor cores (StepMmaKernel: column warps of 16 columns, row warps of 32 rows; each launch timed is the rounding of the rows, then the mma GEMM):");
    var onTensorCores = NbpEngine.Kernels.Profiling.StepGemmSweep.Measure(device, NbpEngine.Kernels.Profiling.StepGemmSweep.K600Shapes(width), [1, 16, 32], launches, tensorCores: true);
    foreach (string line in NbpEngine.Kernels.Profiling.StepGemmSweep.Table(onTensorCores)) Console.WriteLine(line);
    Console.WriteLine($"swept in {clock.Elapsed.TotalSeconds:F1} s");
    if (width != 1536 || kind != IlgpuDeviceKind.Cuda)
    {
        Console.WriteLine("(the whole step under this rule is timed on CUDA at width 1536 only)");
        return;
    }
    // the whole K600 step (separate kernels) with today's launches and with the rule, side by side in one process
    var rule = NbpEngine.Kernels.Profiling.StepGemmSweep.Rule(choices);
    string weights = RandomK600Weights();
    var topKP = new SamplingArgs { Temperature = 1f, TopK = 16000, TopP = 0.9f, Seed = 1 };
    foreach (var (label, r, mma) in new[] { ("today's launches", (NbpEngine.Kernels.Ops.StepGemmRule?)null, false), ("the rule above", rule, false), ("tensor-core step GEMMs", null, true) })
    {
        var results = StepAnatomy.Measure<F16Weights>(device, weights, K600Workload.Prompt(), [(16, 16, topKP, false), (1, 64, topKP, false)], tensorCores: true, stepGemmRule: r,
            tensorCoreSteps: mma);
        foreach (var result in results) Console.WriteLine($"{label}: {result.Table().First()}");
    }
    Console.WriteLine($"swept and stepped in {clock.Elapsed.TotalSeconds:F1} s");
}

// Where a K600 step's time goes: each launch site's device time (CUDA events after every launch), fp16 weights, the
// benchmark's sampling (top-k 16000, top-p 0.9) at B = 16 and B = 1, and greedy at B = 16 (the sampler's share apart)
void StepAnatomyReport(string weightsPath, int[] prompt)
{
    Report("");
    Report("## Step anatomy (K600 shapes, fp16 weights, device time per launch site from profiling markers)");
    using var device = new IlgpuDevice(kind);
    var (hostUs, deviceUs) = StepAnatomy.LaunchOverhead(device, 2000);
    Report($"an empty launch: {hostUs:F2} µs of host time to enqueue, {deviceUs:F2} µs apart on the device (2000 back to back)");
    var topKP = new SamplingArgs { Temperature = 1f, TopK = 16000, TopP = 0.9f, Seed = 1 };
    // the separate kernels show where a layer's time goes; the fused layer launches (the default) what it costs as run
    var greedy = new SamplingArgs { Greedy = 1 };
    var results = StepAnatomy.Measure<F16Weights>(device, weightsPath, prompt,
        [(16, 16, topKP, false), (1, 64, topKP, false), (16, 16, greedy, false), (16, 16, topKP, true), (1, 64, topKP, true)],
        tensorCores: kind == IlgpuDeviceKind.Cuda);
    // and the step GEMMs on tensor cores (DeviceSession.TensorCoreSteps: separate kernels), where their time goes
    results.AddRange(StepAnatomy.Measure<F16Weights>(device, weightsPath, prompt, [(16, 16, topKP, false), (1, 64, topKP, false)],
        tensorCores: kind == IlgpuDeviceKind.Cuda, tensorCoreSteps: true));
    foreach (var (result, name) in results.Zip(new[]
             {
                 "top-k 16000, top-p 0.9", "top-k 16000, top-p 0.9", "greedy", "top-k 16000, top-p 0.9, fused layers", "top-k 16000, top-p 0.9, fused layers",
                 "top-k 16000, top-p 0.9, step GEMMs on tensor cores", "top-k 16000, top-p 0.9, step GEMMs on tensor cores",
             }))
    {
        Report("");
        Report($"### {name}");
        foreach (var line in result.Table()) Report(line);
    }
}

void TokenizerBench()
{
    Report("");
    Report("## Full-size tokenizer (512/256/128 widths, random weights)");
    string path = Path.Combine(Path.GetTempPath(), "nbp-tokenizer-random.safetensors");
    if (!File.Exists(path)) RandomTokenizer.Write(path);
    using var tokenizer = new VideoTokenizer(path);
    var codes = Enumerable.Range(0, 5 * 16 * 16).Select(i => i * 7919 % 64000).ToArray();
    foreach (bool tensorCores in new[] { true, false })
    {
        using var device = new DeviceTokenizer(tokenizer, kind, tensorCores);
        device.Decode(codes.AsSpan(0, 2 * 16 * 16), 2, 16, 16); // warm-up: kernel compilation (a smaller shape)
        device.Decode(codes, 5, 16, 16);
        var clock = Stopwatch.StartNew();
        var pixels = device.Decode(codes, 5, 16, 16);
        double decode = clock.Elapsed.TotalSeconds;
        var frames = pixels.AsSpan(0, 3 * 5 * 128 * 128).ToArray();
        device.Encode(frames, 5, 128, 128);
        clock.Restart();
        device.Encode(frames, 5, 128, 128);
        double encode = clock.Elapsed.TotalSeconds;
        Report($"{(tensorCores ? "tensor cores" : "fp32")}: decode 5 latent frames -> 17 frames of 128x128: {decode * 1e3:F1} ms (~6.2 TFLOP: {6.2e12 / decode / 1e12:F1} TFLOP/s; " +
               $"estimate from the SASS ~31 ms with tensor cores); encode 5 frames: {encode * 1e3:F1} ms");
    }
}

string? Arg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static float[] NpyFloats(string path) => NpyData<float>(path);
static int[] NpyInts(string path) => NpyData<int>(path);
static T[] NpyData<T>(string path) where T : unmanaged
{
    var bytes = File.ReadAllBytes(path);
    int header = BitConverter.ToUInt16(bytes, 8);
    var data = new T[(bytes.Length - 10 - header) / System.Runtime.CompilerServices.Unsafe.SizeOf<T>()];
    Buffer.BlockCopy(bytes, 10 + header, data, 0, bytes.Length - 10 - header);
    return data;
}

static int[] Tokens(string path) => File.ReadAllText(path).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
