using System.Diagnostics;
using NbpEngine.Kernels.Backend;
using NbpEngine.Parity;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Bench;

/// <summary>
/// <c>nbp-bench guidance</c>: what classifier-free guidance costs per step (issue 15). The UCF workload (random weights,
/// K600 widths, 96016-row vocabulary) generated with and without guidance, alternately in one process (A, B, A, B, ...),
/// so both see the same machine state; NTP steps (hybrid's first block, 1 row per stream) and NBP steps (16 rows per
/// stream) are timed apart, and the table gives the medians and their ratio.
/// </summary>
internal static class GuidanceBench
{
    public static async Task<int> RunAsync(string cache, int layers, BackendKind backend, int threads, int repetitions, float scale, int nbpSteps, CancellationToken ct)
    {
        Directory.CreateDirectory(cache);
        string weights = Path.Combine(cache, $"nbp-bench-ucf-transformer-{layers}.safetensors");
        if (!File.Exists(weights))
        {
            Console.Error.WriteLine($"nbp-bench: writing random weights {weights}");
            UcfWorkload.WriteRandomTransformer(weights, layers);
        }
        using var model = await NbpModel.LoadAsync(weights, new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider }, null, ct);
        using var session = model.CreateSession(new SessionOptions { Backend = backend, Threads = threads });
        int b = UcfWorkload.BlockSize;
        var prompt = Enumerable.Range(0, UcfWorkload.ConditionTokens).Select(i => b + 1 + 97 * i).Append(0).ToArray();
        var plain = new GenerationRequest { Prompt = prompt, Steps = b + nbpSteps, Sampling = SamplingSettings.Published, Seed = 1 };
        var guided = plain with { GuidanceScale = scale };
        Time(session, plain with { Steps = b + 1 }); // JIT and first-touch out of the timings
        Time(session, guided with { Steps = b + 1 });
        var runs = new List<(double Ntp, double Nbp)>[] { [], [] };
        for (int r = 0; r < repetitions; r++)
        {
            ct.ThrowIfCancellationRequested();
            runs[0].Add(Time(session, plain));
            runs[1].Add(Time(session, guided));
            Console.Error.WriteLine($"nbp-bench: guidance run {r + 1}/{repetitions}: plain {runs[0][^1].Nbp * 1e3:F0} ms, guided {runs[1][^1].Nbp * 1e3:F0} ms per NBP step");
        }
        double Median(IEnumerable<double> v) => new Samples(v.ToArray()).Median;
        double ntp0 = Median(runs[0].Select(x => x.Ntp)), ntp1 = Median(runs[1].Select(x => x.Ntp));
        double nbp0 = Median(runs[0].Select(x => x.Nbp)), nbp1 = Median(runs[1].Select(x => x.Nbp));
        Console.WriteLine($"UCF workload, {layers} layers, C = {K600Workload.Width}, V = {UcfWorkload.Vocab}, {session.BackendName}, {threads} threads, guidance scale {scale}, median of {repetitions} alternating runs");
        Console.WriteLine();
        Console.WriteLine("| step | plain ms | guided ms | guided / plain |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine($"| NTP (1 row per stream, {b - 1} steps) | {ntp0 * 1e3:F1} | {ntp1 * 1e3:F1} | {ntp1 / ntp0:F2}x |");
        Console.WriteLine($"| NBP ({b} rows per stream, {nbpSteps} steps) | {nbp0 * 1e3:F1} | {nbp1 * 1e3:F1} | {nbp1 / nbp0:F2}x |");
        return 0;
    }

    /// <summary>Mean seconds per NTP step (steps 1..B-1) and per NBP step (steps B+1..; step B, the middle-bos switch, is neither).</summary>
    private static (double Ntp, double Nbp) Time(NbpSession session, GenerationRequest request)
    {
        var generator = session.CreateGenerator(request);
        int b = generator.Plan.BlockSize;
        var tokens = new int[b];
        var clock = new Stopwatch();
        double ntp = 0, nbp = 0;
        int ntpSteps = 0, nbpSteps = 0;
        while (!generator.IsComplete)
        {
            int step = generator.StepIndex;
            clock.Restart();
            generator.Step(tokens);
            double seconds = clock.Elapsed.TotalSeconds;
            if (step >= 1 && step < b) { ntp += seconds; ntpSteps++; }
            else if (step > b) { nbp += seconds; nbpSteps++; }
        }
        return (ntp / Math.Max(1, ntpSteps), nbp / Math.Max(1, nbpSteps));
    }
}
