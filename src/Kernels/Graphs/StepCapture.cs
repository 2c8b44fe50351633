using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace NbpEngine.Kernels.Graphs;

/// <summary>
/// Records a generation step's launches on the session's stream and submits them as one (issue 12 item 4). Between
/// <see cref="Begin"/> and <see cref="Submit"/> the session only enqueues kernels and device-to-device copies: no host
/// copy, no synchronisation, no profiling marker (a CUDA stream capture would fail on the first two and record the third).
/// </summary>
public interface IStepCapture : IDisposable
{
    /// <summary>From here, launches on the stream are recorded instead of run.</summary>
    void Begin();

    /// <summary>Ends the recording and runs what was recorded, with one launch.</summary>
    void Submit();

    /// <summary>Steps submitted so far.</summary>
    long Submitted { get; }
}

/// <summary>
/// <see cref="IStepCapture"/> as a CUDA graph: each step is captured from the stream (the kernels' arguments change from
/// step to step: positions, cache offsets, key chunks, the sampler's step), the instantiated graph is updated in place
/// with the new arguments (cuGraphExecUpdate; instantiated anew only when the step's shape changed, e.g. a batch's
/// feeds), and launched once. On the GPU, the step's ~150 kernels then start back to back without a launch each.
/// </summary>
public sealed class CudaStepGraph : IStepCapture
{
    private readonly CudaGraphDriver _driver;
    private readonly IntPtr _stream;
    private IntPtr _exec;
    private bool _capturing;

    public long Submitted { get; private set; }

    private CudaStepGraph(CudaGraphDriver driver, IntPtr stream) => (_driver, _stream) = (driver, stream);

    /// <summary>A step graph on <paramref name="stream"/>, or null where that is not a CUDA stream with a CUDA 12+ driver.</summary>
    public static CudaStepGraph? TryCreate(AcceleratorStream stream) =>
        stream is CudaStream cuda && CudaGraphDriver.Instance is { } driver ? new CudaStepGraph(driver, cuda.StreamPtr) : null;

    public void Begin()
    {
        if (_capturing) throw new InvalidOperationException("a step is already being captured");
        _driver.BeginCapture(_stream);
        _capturing = true;
    }

    public void Submit()
    {
        if (!_capturing) throw new InvalidOperationException("no step is being captured");
        _capturing = false;
        var graph = _driver.EndCapture(_stream);
        try
        {
            if (_exec == IntPtr.Zero || !_driver.TryUpdate(_exec, graph))
            {
                if (_exec != IntPtr.Zero) _driver.DestroyExec(_exec);
                _exec = IntPtr.Zero; // if instantiating throws, no destroyed handle is kept
                _exec = _driver.Instantiate(graph);
            }
        }
        finally
        {
            _driver.DestroyGraph(graph);
        }
        _driver.Launch(_exec, _stream);
        Submitted++;
    }

    public void Dispose()
    {
        if (_capturing)
        {
            _capturing = false;
            try { _driver.DestroyGraph(_driver.EndCapture(_stream)); } catch (CudaGraphException) { } // already broken: nothing to keep
        }
        if (_exec != IntPtr.Zero) _driver.DestroyExec(_exec);
        _exec = IntPtr.Zero;
    }
}
