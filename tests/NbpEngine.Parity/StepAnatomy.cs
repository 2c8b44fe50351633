using System.Diagnostics;
using System.Globalization;
using ILGPU;
using ILGPU.Runtime;
using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Core;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.Profiling;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Parity;

/// <summary>Where a generation step's time goes on a device: each launch site's device time per step, and the host's wall time.</summary>
/// <param name="UnprofiledMsPerStep">wall time per step with no markers (the figure to compare with a benchmark)</param>
/// <param name="ProfiledMsPerStep">wall time per step with a marker after every launch</param>
/// <param name="FusedLayers">each layer one launch (DeviceSession.FusedLayers), or its six kernels apart</param>
/// <param name="TensorCoreSteps">the step GEMMs on tensor cores (DeviceSession.TensorCoreSteps)</param>
public sealed record StepAnatomyResult(int Block, int Steps, IReadOnlyList<LaunchTime> Sites, long LaunchesPerStep, double UnprofiledMsPerStep,
    double ProfiledMsPerStep, bool FusedLayers, bool TensorCoreSteps = false)
{
    /// <summary>Device busy time per step: the sum of every site's time.</summary>
    public double DeviceMsPerStep => Sites.Sum(s => s.DeviceTime.TotalMilliseconds) / Steps;

    /// <summary>A markdown table, largest share first, and a line with the step's totals.</summary>
    public IEnumerable<string> Table()
    {
        yield return $"B = {Block}, {(FusedLayers ? "fused layers" : "separate kernels")}{(TensorCoreSteps ? ", step GEMMs on tensor cores" : "")}, {Steps} profiled steps: wall {UnprofiledMsPerStep:F3} ms a step unprofiled, {ProfiledMsPerStep:F3} ms profiled; " +
                     $"device busy {DeviceMsPerStep:F3} ms a step; {LaunchesPerStep} launches a step";
        yield return "";
        yield return "| site | kernel | per step | µs a step | µs each | share of device time |";
        yield return "|---|---|---|---|---|---|";
        double total = Sites.Sum(s => s.DeviceTime.TotalMilliseconds);
        foreach (var s in Sites.OrderByDescending(s => s.DeviceTime))
        {
            double ms = s.DeviceTime.TotalMilliseconds;
            yield return string.Create(CultureInfo.InvariantCulture,
                $"| {s.What} | {s.Kernel} | {(double)s.Count / Steps:0.##} | {ms * 1e3 / Steps:F1} | {ms * 1e3 / s.Count:F2} | {(total > 0 ? ms / total : 0):P1} |");
        }
    }
}

/// <summary>
/// The step anatomy of one sequence on a device session: a prefill, one untimed step (kernel compilation), then <c>steps</c> unprofiled steps (timed on the
/// host), then <c>steps</c> profiled ones (every launch followed by a marker, <see cref="LaunchProfile"/>). The same
/// code runs on the CPU accelerator in the tests and on a GPU in nbp-gpu-check.
/// </summary>
public static class StepAnatomy
{
    /// <summary>
    /// Each case on the transformer checkpoint at <paramref name="weightsPath"/> (safetensors, config from its metadata),
    /// loaded, compiled for and uploaded to the device once for all of them; with <paramref name="stepGemmRule"/>, every
    /// session launches its step GEMMs by that rule (DeviceSession.StepGemmRule: separate kernels only); with
    /// <paramref name="tensorCoreSteps"/>, on tensor cores (DeviceSession.TensorCoreSteps).
    /// </summary>
    public static List<StepAnatomyResult> Measure<TW>(IlgpuDevice device, string weightsPath, int[] prompt,
        IEnumerable<(int Block, int Steps, SamplingArgs Sampling, bool FusedLayers)> cases, bool tensorCores, StepGemmRule? stepGemmRule = null, bool tensorCoreSteps = false)
        where TW : struct, IWeightView
    {
        var file = SafetensorsFile.Open(weightsPath); // owned by the weights from here
        using var weights = TransformerWeights.Load(file, ModelConfigReader.Read(file, new ModelConfigOverrides(), NullLogger.Instance), NullLogger.Instance);
        var kernels = new KernelSet<TW>(device.Accelerator);
        using var deviceWeights = new DeviceWeights<TW>(device.Accelerator, weights);
        return cases.Select(c => Measure(device, kernels, deviceWeights, prompt, c.Block, c.Steps, c.Sampling, c.FusedLayers, tensorCores, stepGemmRule, tensorCoreSteps)).ToList();
    }

    /// <summary>
    /// What one launch costs apart from its work: <paramref name="launches"/> launches of a kernel that writes 32 ints,
    /// back to back on one stream. Host: wall time per launch until the last is enqueued (the launcher's own cost);
    /// device: marker to marker per launch (the gap the GPU sees between two dependent kernels).
    /// </summary>
    public static (double HostMicroseconds, double DeviceMicroseconds) LaunchOverhead(IlgpuDevice device, int launches)
    {
        var kernel = device.Accelerator.LoadKernel<ArrayView<int>>(Touch);
        using var stream = device.Accelerator.CreateStream();
        using var buffer = device.Accelerator.Allocate1D<int>(32);
        var config = new KernelConfig(1, 32);
        for (int i = 0; i < 10; i++) kernel(stream, config, buffer.View); // compile and warm
        stream.Synchronize();
        using var start = stream.AddProfilingMarker();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < launches; i++) kernel(stream, config, buffer.View);
        double host = clock.Elapsed.TotalMilliseconds * 1e3 / launches;
        using var end = stream.AddProfilingMarker();
        stream.Synchronize();
        return (host, (end - start).TotalMilliseconds * 1e3 / launches);
    }

    private static void Touch(ArrayView<int> values) => values[Group.IdxX] = Group.IdxX;

    private static StepAnatomyResult Measure<TW>(IlgpuDevice device, KernelSet<TW> kernels, DeviceWeights<TW> deviceWeights, int[] prompt, int block, int steps,
        SamplingArgs sampling, bool fusedLayers, bool tensorCores, StepGemmRule? stepGemmRule, bool tensorCoreSteps) where TW : struct, IWeightView
    {
        int capacity = prompt.Length + (2 * steps + 1) * block;
        int positions = deviceWeights.Config.PositionCount;
        if (capacity > positions)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"a {prompt.Length}-token prompt and 1 + 2 x {steps} steps of {block} need {capacity} positions; the model has {positions}");
        using var session = new DeviceSession<TW>(device.Accelerator, device.Shape, kernels, deviceWeights, 1, capacity, Math.Max(prompt.Length, block), block, tensorCores);
        session.FusedLayers = fusedLayers;
        session.StepGemmRule = stepGemmRule;
        session.TensorCoreSteps = tensorCoreSteps;
        var ids = new int[block];
        int step = 0;
        session.Forward(prompt, [new SequenceFeed(0, prompt.Length, AttentionMask.BlockCausal(prompt.Length, block), block)]);
        session.Sample(0, sampling with { Step = step++ }, ids);

        void Steps(int count)
        {
            for (int i = 0; i < count; i++)
            {
                session.Forward(ids, [new SequenceFeed(0, block, AttentionMask.None, block)]);
                session.Sample(0, sampling with { Step = step++ }, ids);
            }
        }

        Steps(1); // compiles what only steps launch (the step GEMM's shapes, the split-key attention): not timed
        var clock = Stopwatch.StartNew();
        Steps(steps);
        double unprofiled = clock.Elapsed.TotalMilliseconds / steps;
        using var profile = session.StartProfiling();
        long launches = session.Launches;
        clock.Restart();
        Steps(steps);
        double profiled = clock.Elapsed.TotalMilliseconds / steps;
        session.StopProfiling();
        return new StepAnatomyResult(block, steps, profile.Collect(), (session.Launches - launches) / steps, unprofiled, profiled, session.StepsRunFused, tensorCoreSteps);
    }
}
