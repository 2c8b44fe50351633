using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NbpEngine.Kernels;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// Every kernel compiles to PTX (sm_80, PTX ISA 8.0; runs on A100, H100 and later) without a GPU, so CUDA-only compile errors
/// (unsupported intrinsics, shared-memory misuse, managed calls) fail CI rather than a GPU run.
/// </summary>
public class PtxCompileTests
{
    public static TheoryData<string> Kernels
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var m in KernelCatalog.All()) data.Add(SassInspector.Name(m));
            return data;
        }
    }


    [Theory]
    [MemberData(nameof(Kernels))]
    public void KernelCompilesToPtx(string name)
    {
        var method = KernelCatalog.All().Single(m => SassInspector.Name(m) == name);
        using var context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
        var backend = new PTXBackend(context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_80, null!);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), new KernelSpecialization());
        Assert.Contains(".entry", compiled.PTXAssembly);
        Assert.Contains(".version 8.0", compiled.PTXAssembly);
        Assert.Contains(".target sm_80", compiled.PTXAssembly);
        if (name.StartsWith("TensorCore", StringComparison.Ordinal))
            Assert.Contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", compiled.PTXAssembly);
        if (name.StartsWith("TensorCoreMatMulKernel", StringComparison.Ordinal))
            Assert.Contains("cvt.rn.f16x2.f32", compiled.PTXAssembly); // the conv's weights come packed, its input converts the same way
    }
}
