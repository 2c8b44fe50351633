using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;

namespace NbpEngine.Kernels;

/// <summary>
/// Lets ILGPU find the CUDA driver where only its versioned name exists. ILGPU imports "cuda", which .NET
/// probes on Linux as libcuda.so; driver installs inside containers usually provide only libcuda.so.1
/// (the unversioned link belongs to the CUDA toolkit's development files), so without this a machine with
/// a working driver would report "no CUDA device".
/// </summary>
internal static class CudaDriverLibrary
{
    private static int _installed;

    /// <summary>Installs the resolver once per process; later calls do nothing.</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) != 0) return;
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Context).Assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // the host installed its own resolver for ILGPU first: leave it in charge
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != "cuda" || !OperatingSystem.IsLinux()) return IntPtr.Zero;
        return TryLoad(out var handle) ? handle : IntPtr.Zero;
    }

    /// <summary>The CUDA driver library by either name (the Linux names; the Windows one, nvcuda.dll, where that runs).</summary>
    public static bool TryLoad(out IntPtr handle)
    {
        foreach (var candidate in OperatingSystem.IsWindows() ? new[] { "nvcuda.dll" } : new[] { "libcuda.so", "libcuda.so.1" })
            if (NativeLibrary.TryLoad(candidate, out handle)) return true;
        handle = IntPtr.Zero;
        return false;
    }
}
