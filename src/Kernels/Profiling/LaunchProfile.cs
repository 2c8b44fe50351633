using ILGPU.Runtime;

namespace NbpEngine.Kernels.Profiling;

/// <summary>Device time of one launch site over the profiled forwards: what it computes, which kernel, how often, how long.</summary>
/// <param name="What">the call site: "q/k/v gemm", "attention partial", "sampling", ...</param>
/// <param name="Kernel">the kernel or copy that ran there: "step", "tensor cores", "memcpy", ...</param>
public readonly record struct LaunchTime(string What, string Kernel, int Count, TimeSpan DeviceTime);

/// <summary>
/// The step anatomy: device time per launch site of a <see cref="DeviceSession{TW}"/>, from ILGPU profiling markers
/// (CUDA events on a GPU). A marker follows every launch and copy; the time between it and the marker before is charged
/// to that launch. Each forward starts with its own marker, so the host's time between steps (the GPU idle) is never
/// charged to a kernel, and the sum of the charged times is the device's busy time. Markers cost ~1-2 µs of host
/// time each on CUDA: profile to see where the time goes, not to measure the step's total.
/// </summary>
public sealed class LaunchProfile : IDisposable
{
    private readonly AcceleratorStream _stream;
    private readonly List<(string? What, string? Kernel, ProfilingMarker Marker)> _pending = new();
    private readonly Dictionary<(string, string), (int Count, TimeSpan Time)> _totals = new();
    private readonly List<(string, string)> _order = new();

    internal LaunchProfile(AcceleratorStream stream) => _stream = stream;

    /// <summary>A forward's first marker: what follows is charged from here, not from the previous forward's last launch.</summary>
    internal void Begin() => _pending.Add((null, null, _stream.AddProfilingMarker()));

    /// <summary>Charges the device time since the previous marker to (<paramref name="what"/>, <paramref name="kernel"/>).</summary>
    internal void Mark(string what, string kernel) => _pending.Add((what, kernel, _stream.AddProfilingMarker()));

    /// <summary>Waits for the stream, then returns every launch site's totals so far, in the order they first ran.</summary>
    public IReadOnlyList<LaunchTime> Collect()
    {
        _stream.Synchronize();
        ProfilingMarker? previous = null;
        foreach (var (what, kernel, marker) in _pending)
        {
            if (what is not null && previous is not null)
            {
                var key = (what, kernel!);
                if (!_totals.TryGetValue(key, out var total)) _order.Add(key);
                _totals[key] = (total.Count + 1, total.Time + (marker - previous));
            }
            previous?.Dispose();
            previous = marker;
        }
        previous?.Dispose();
        _pending.Clear();
        return _order.Select(k => new LaunchTime(k.Item1, k.Item2, _totals[k].Count, _totals[k].Time)).ToList();
    }

    public void Dispose()
    {
        foreach (var (_, _, marker) in _pending) marker.Dispose();
        _pending.Clear();
    }
}
