using System.Diagnostics;
using System.Text;
using System.Text.Json;
using NbpEngine.Core;
using NbpEngine.Kernels;
using NbpEngine.Loader.IO;
using NbpEngine.Parity;
using NbpEngine.Pipeline;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Bench;

internal sealed record BenchSettings(string? Weights, string? Tokenizer, bool Random, bool Quick, BackendKind Backend, WeightStorage? DeviceWeights,
    bool? TensorCores, int[] Blocks, int Threads, int Repetitions, string Out, string Cache, string? Json, bool Torch, string Python);

/// <summary>Seconds of the repeated runs of one measurement; the table shows the median and the best.</summary>
internal sealed record Samples(double[] Seconds)
{
    public double Median
    {
        get
        {
            var sorted = Seconds.Order().ToArray();
            int n = sorted.Length;
            return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        }
    }

    public double Best => Seconds.Min();
}

internal sealed record BlockRow(int Block, int Steps, Samples Prefill, Samples StepSeconds);

/// <summary>The K600 workload through <see cref="NbpPipeline"/>: what nbp-run does for one video, per block size.</summary>
internal static class Bench
{
    /// <summary>The paper's Figure 7 (A100, generated frames/s per block size).</summary>
    private static readonly (int Block, double Fps)[] Paper = [(1, 0.80), (8, 5.24), (16, 8.89), (32, 10.81), (64, 14.12), (256, 17.14)];
    private const int GeneratedTokens = K600Workload.GeneratedTokens, GeneratedFrames = K600Workload.GeneratedFrames;

    public static async Task<int> RunAsync(BenchSettings s, CancellationToken ct)
    {
        Directory.CreateDirectory(s.Out);
        Directory.CreateDirectory(s.Cache);
        // --quick keeps every shape of the K600 workload but the depth: 4 transformer layers instead of 24 and a
        // tokenizer at half width (1/4 of the FLOPs); the floors are computed for what actually runs.
        int layers = s.Quick ? 4 : 24;
        (int A, int B, int C) widths = s.Quick ? (256, 128, 64) : (512, 256, 128);
        string weights = s.Weights ?? Path.Combine(s.Cache, $"nbp-bench-transformer-{layers}.safetensors");
        string tokenizerPath = s.Tokenizer ?? Path.Combine(s.Cache, $"nbp-bench-tokenizer-{widths.A}.safetensors");
        if (s.Random)
        {
            if (!File.Exists(weights)) { Console.Error.WriteLine($"nbp-bench: writing random weights {weights}"); K600Workload.WriteRandomTransformer(weights, layers); }
            if (!File.Exists(tokenizerPath)) { Console.Error.WriteLine($"nbp-bench: writing random tokenizer {tokenizerPath}"); RandomTokenizer.Write(tokenizerPath, widths.A, widths.B, widths.C); }
        }
        var options = new PipelineOptions
        {
            Backend = s.Backend, DeviceWeights = s.DeviceWeights, TensorCores = s.TensorCores, Threads = s.Threads,
            Overrides = new() { Resolution = K600Workload.Resolution, SequenceLength = K600Workload.ClipFrames },
        };
        using var pipeline = await NbpPipeline.LoadAsync(weights, tokenizerPath, options, null, ct);
        var codec = pipeline.Codec!;
        var cfg = pipeline.Model.Config;
        bool onDevice = codec.OnDevice;
        var deviceKind = s.Backend == BackendKind.IlgpuCpu ? IlgpuDeviceKind.Cpu : IlgpuDeviceKind.Cuda;

        // the ceilings of whatever runs the workload: this CPU, or the device (copy bandwidth, own matmul kernel's rate)
        Console.Error.WriteLine($"nbp-bench: measuring the {(onDevice ? deviceKind + " device" : "machine")} (copy bandwidth, GEMM rate)");
        double bandwidth, peak;
        if (onDevice)
        {
            using var probe = new IlgpuDevice(deviceKind);
            (bandwidth, peak) = (probe.CopyBandwidth(), probe.MatMulRate());
        }
        else (bandwidth, peak) = (Machine.CopyBandwidth(s.Threads), Machine.GemmPeak(s.Threads));

        var clip = MovingPattern();
        // one warm-up of each phase first: the CPU tokenizer's weight preparation, the transformer's packing or upload
        var (promptCodes, firstEncode) = codec.Encode(clip, s.Threads);
        var encode = Repeat(s.Repetitions, () => codec.Encode(clip, s.Threads).Timing.Seconds);
        var prompt = promptCodes.Select(code => Math.Min(code, cfg.VocabSize - 1)).ToArray();

        var rows = new List<BlockRow>();
        int[]? generated16 = null;
        var sessionClock = Stopwatch.StartNew();
        foreach (int block in s.Blocks)
        {
            ct.ThrowIfCancellationRequested();
            var request = new GenerationRequest
            {
                Prompt = prompt, Mode = GenerationMode.Frame, BlockSize = block, Steps = GeneratedTokens / block,
                Sampling = SamplingSettings.Published, Seed = 1,
            };
            pipeline.Generate(request with { Steps = Math.Min(2, GeneratedTokens / block) }, null, ct);
            var runs = Enumerable.Range(0, s.Repetitions).Select(_ => pipeline.Generate(request, null, ct)).ToList();
            if (block == 16 || generated16 is null) generated16 = runs[0].Tokens;
            var row = new BlockRow(block, request.Steps!.Value, new Samples(runs.Select(r => r.Timings.PrefillSeconds).ToArray()),
                new Samples(runs.Select(r => r.Timings.StepSeconds).ToArray()));
            rows.Add(row);
            Console.Error.WriteLine($"nbp-bench: B = {block}: prefill {row.Prefill.Median:F2} s, {row.Steps - 1} steps {row.StepSeconds.Median:F2} s (median of {s.Repetitions}, {runs[0].BackendName})");
        }
        double warmSeconds = sessionClock.Elapsed.TotalSeconds;

        var all = prompt.Concat(generated16!).Select(id => Math.Clamp(id, 0, codec.Model.CodebookSize - 1)).ToArray();
        var firstDecode = codec.Decode(all, K600Workload.LatentSide, s.Threads).Timing;
        var decode = Repeat(s.Repetitions, () => codec.Decode(all, K600Workload.LatentSide, s.Threads).Timing.Seconds);

        var report = new BenchReport(s, cfg, layers, widths, onDevice, deviceKind, bandwidth, peak, encode, decode, rows, Paper,
            codec.Model.ConvAlgorithm.ToString().ToLowerInvariant(), codec.Model.CpuWeightBytes, firstEncode.PrepareSeconds + firstDecode.PrepareSeconds,
            codec.Model.EncodeFlops(5, 128, 128), codec.Model.EncodeGemmFlops(5, 128, 128), codec.Model.DecodeFlops(5, 16, 16), codec.Model.DecodeGemmFlops(5, 16, 16),
            prompt.Length, GeneratedFrames);
        var md = new StringBuilder(report.Markdown());
        if (s.Torch) md.Append(TorchReference.Table(s, weights, tokenizerPath, cfg.HeadCount, widths, rows, report.TotalOf));
        string text = md.ToString();
        Console.WriteLine(text);
        string mdPath = Path.Combine(s.Out, "nbp-bench.md"), pngPath = Path.Combine(s.Out, "nbp-bench.png");
        OutputPath.WriteAtomically(mdPath, stream => stream.Write(Encoding.UTF8.GetBytes(text)));
        string title = $"NBP K600 workload: {(onDevice ? deviceKind.ToString() : "CPU")} {(s.Quick ? "(--quick) " : "")}vs the paper's A100";
        Chart.Write(pngPath, title, onDevice ? $"this run ({deviceKind})" : $"this run (CPU, {s.Threads} threads)",
            rows.Select(r => (r.Block, GeneratedFrames / report.TotalOf(r))).ToArray(), Paper);
        if (s.Json is not null)
            OutputPath.WriteAtomically(s.Json, stream => JsonSerializer.Serialize(stream, report.Json(), new JsonSerializerOptions { WriteIndented = true }));
        Console.Error.WriteLine($"nbp-bench: table -> {mdPath}, chart -> {pngPath}{(s.Json is null ? "" : ", JSON -> " + s.Json)} (warm-ups and runs took {warmSeconds:F0} s)");
        return 0;
    }

    private static Samples Repeat(int count, Func<double> run) => new(Enumerable.Range(0, count).Select(_ => run()).ToArray());

    /// <summary>5 conditioning frames of a moving pattern: no input file needed.</summary>
    private static VideoClip MovingPattern()
    {
        var frames = new float[3 * 5 * 128 * 128];
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 5; t++)
                for (int y = 0; y < 128; y++)
                    for (int x = 0; x < 128; x++)
                        frames[((c * 5 + t) * 128 + y) * 128 + x] = 0.5f + 0.4f * MathF.Sin(0.1f * x + 0.3f * t + c) * MathF.Cos(0.08f * y - 0.2f * t);
        return new VideoClip(frames, 5, 128, 128);
    }
}
