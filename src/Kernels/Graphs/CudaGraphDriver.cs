using System.Runtime.InteropServices;

namespace NbpEngine.Kernels.Graphs;

/// <summary>
/// The CUDA driver's graph entry points (stream capture, instantiation, in-place update, launch), which ILGPU does not
/// wrap, taken from the driver library ILGPU itself uses (<see cref="CudaDriverLibrary"/>). Every call's result is
/// checked: a failure throws <see cref="CudaGraphException"/> with the function's name and CUDA's error code.
/// </summary>
internal sealed class CudaGraphDriver
{
    // CUresult f(...): handles are pointers; CUstreamCaptureMode and CUresult are C ints
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int BeginCaptureFn(IntPtr stream, int mode);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int EndCaptureFn(IntPtr stream, out IntPtr graph);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int InstantiateFn(out IntPtr exec, IntPtr graph, ulong flags);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int ExecUpdateFn(IntPtr exec, IntPtr graph, out UpdateResultInfo info);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int LaunchFn(IntPtr exec, IntPtr stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int DestroyFn(IntPtr handle);

    /// <summary>CUgraphExecUpdateResultInfo (CUDA 12): the result code and the two nodes it names.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct UpdateResultInfo
    {
        public int Result;
        public IntPtr ErrorNode, ErrorFromNode;
    }

    /// <summary>CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's unsafe calls (a synchronisation, an allocation) break the capture.</summary>
    private const int ThreadLocalCapture = 1;

    private readonly BeginCaptureFn _begin;
    private readonly EndCaptureFn _end;
    private readonly InstantiateFn _instantiate;
    private readonly ExecUpdateFn _update;
    private readonly LaunchFn _launch;
    private readonly DestroyFn _destroyGraph, _destroyExec;

    private CudaGraphDriver(IntPtr library)
    {
        _begin = Function<BeginCaptureFn>(library, "cuStreamBeginCapture_v2");
        _end = Function<EndCaptureFn>(library, "cuStreamEndCapture");
        _instantiate = Function<InstantiateFn>(library, "cuGraphInstantiateWithFlags");
        _update = Function<ExecUpdateFn>(library, "cuGraphExecUpdate_v2");
        _launch = Function<LaunchFn>(library, "cuGraphLaunch");
        _destroyGraph = Function<DestroyFn>(library, "cuGraphDestroy");
        _destroyExec = Function<DestroyFn>(library, "cuGraphExecDestroy");
    }

    private static readonly Lazy<CudaGraphDriver?> Loaded = new(() =>
    {
        if (!CudaDriverLibrary.TryLoad(out var library)) return null;
        try
        {
            return new CudaGraphDriver(library);
        }
        catch (EntryPointNotFoundException)
        {
            return null; // a driver older than CUDA 12 (no cuGraphExecUpdate_v2)
        }
    });

    /// <summary>The driver's graph functions, or null where there is no CUDA 12+ driver.</summary>
    public static CudaGraphDriver? Instance => Loaded.Value;

    private static T Function<T>(IntPtr library, string name) where T : Delegate =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? Marshal.GetDelegateForFunctionPointer<T>(address)
            : throw new EntryPointNotFoundException($"the CUDA driver has no {name}");

    private static void Check(int result, string function)
    {
        if (result != 0) throw new CudaGraphException($"{function} failed with CUDA error {result}");
    }

    public void BeginCapture(IntPtr stream) => Check(_begin(stream, ThreadLocalCapture), "cuStreamBeginCapture");

    public IntPtr EndCapture(IntPtr stream)
    {
        Check(_end(stream, out var graph), "cuStreamEndCapture");
        return graph;
    }

    public IntPtr Instantiate(IntPtr graph)
    {
        Check(_instantiate(out var exec, graph, 0), "cuGraphInstantiateWithFlags");
        return exec;
    }

    /// <summary>Gives <paramref name="exec"/> the parameters of <paramref name="graph"/> in place; false when their shapes differ (then instantiate anew).</summary>
    public bool TryUpdate(IntPtr exec, IntPtr graph) => _update(exec, graph, out _) == 0;

    public void Launch(IntPtr exec, IntPtr stream) => Check(_launch(exec, stream), "cuGraphLaunch");

    public void DestroyGraph(IntPtr graph) => Check(_destroyGraph(graph), "cuGraphDestroy");

    public void DestroyExec(IntPtr exec) => Check(_destroyExec(exec), "cuGraphExecDestroy");
}

/// <summary>A CUDA graph call failed (the message names the driver function and CUDA's error code).</summary>
public sealed class CudaGraphException(string message) : Exception(message);
