using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests.Kernels;

/// <summary>What ptxas and cuobjdump (CUDA 11.8) make of one kernel for sm_90: the closest thing to a profiler without a GPU.</summary>
/// <param name="HmmaLoop">instructions in the innermost loop around the first HMMA (static count: every path of the body), 0 without HMMA</param>
public sealed record SassFigures(string Kernel, int Registers, int StackBytes, int SpillStoreBytes, int SpillLoadBytes, int SharedBytes,
    int Instructions, int Hmma, int Ldg128, int Fp64, int LocalMemory, int HmmaLoop = 0);

/// <summary>
/// Compiles a kernel to PTX with ILGPU (ISA 7.8, the newest ptxas 11.8 reads), assembles it with <c>ptxas -v -arch=sm_90</c>
/// and counts SASS instructions from <c>cuobjdump -sass</c>. The tools come from tools/sass/fetch-cuda-tools.sh
/// (.ci/run fetches them into .cache/cuda-tools/bin); <see cref="ToolsFolder"/> is null where they are missing.
/// </summary>
public static partial class SassInspector
{
    public static string? ToolsFolder
    {
        get
        {
            var candidates = new[] { Environment.GetEnvironmentVariable("NBP_CUDA_TOOLS"), Path.Combine(Fixtures.RepositoryRoot, ".cache", "cuda-tools", "bin") };
            return candidates.FirstOrDefault(c => c is not null && File.Exists(Path.Combine(c, "ptxas")) && File.Exists(Path.Combine(c, "cuobjdump"))
                                                   && File.Exists(Path.Combine(c, "nvdisasm")));
        }
    }

    /// <summary>Type.Method&lt;type arguments&gt;, leaving out PtxMma (every catalog kernel is closed over it).</summary>
    public static string Name(MethodInfo m)
    {
        var arguments = m.IsGenericMethod ? m.GetGenericArguments().Where(t => t != typeof(NbpEngine.Kernels.TensorCores.PtxMma)).Select(t => t.Name).ToList() : [];
        return m.DeclaringType!.Name + "." + m.Name + (arguments.Count > 0 ? "<" + string.Join(", ", arguments) + ">" : "");
    }

    public static SassFigures Inspect(MethodInfo kernel, string scratch)
    {
        string tools = ToolsFolder ?? throw new InvalidOperationException("ptxas/cuobjdump/nvdisasm not found: bash tools/sass/fetch-cuda-tools.sh");
        using var context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
        var backend = new PTXBackend(context, CudaArchitecture.SM_80, CudaInstructionSet.ISA_78, null!);
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(kernel), new KernelSpecialization());
        string name = Name(kernel).Replace('<', '_').Replace('>', '_'), ptx = Path.Combine(scratch, name + ".ptx"), cubin = Path.Combine(scratch, name + ".cubin");
        File.WriteAllText(ptx, compiled.PTXAssembly);
        string info = Run(Path.Combine(tools, "ptxas"), tools, "-v", "-arch=sm_90", "-o", cubin, ptx);
        string sass = Run(Path.Combine(tools, "cuobjdump"), tools, "-sass", cubin);
        // NBP_SASS_DUMP=folder keeps each kernel's PTX and SASS for reading (the profiler when no GPU is lent)
        if (Environment.GetEnvironmentVariable("NBP_SASS_DUMP") is { Length: > 0 } dump)
        {
            Directory.CreateDirectory(dump);
            File.Copy(ptx, Path.Combine(dump, name + ".ptx"), overwrite: true);
            File.WriteAllText(Path.Combine(dump, name + ".sass"), sass);
        }
        var ops = Instruction().Matches(sass).Select(m => m.Groups[1].Value).ToList();
        return new SassFigures(Name(kernel),
            Number(info, @"Used (\d+) registers"), Number(info, @"(\d+) bytes stack frame"), Number(info, @"(\d+) bytes spill stores"),
            Number(info, @"(\d+) bytes spill loads"), Number(info, @"(\d+) bytes smem"),
            ops.Count, ops.Count(o => o.StartsWith("HMMA", StringComparison.Ordinal)), ops.Count(o => o.StartsWith("LDG", StringComparison.Ordinal) && o.Contains(".128")),
            ops.Count(o => Fp64().IsMatch(o)), ops.Count(o => o.StartsWith("LDL", StringComparison.Ordinal) || o.StartsWith("STL", StringComparison.Ordinal)),
            HmmaLoop(sass));
    }

    /// <summary>
    /// The tensor-core kernels' cost per slice: the span of the innermost backward branch that encloses the first HMMA
    /// (from its target to the branch), in instructions.
    /// </summary>
    private static int HmmaLoop(string sass)
    {
        var lines = Line().Matches(sass).Select(m => (Address: Convert.ToInt32(m.Groups[1].Value, 16), Text: m.Groups[2].Value)).ToList();
        int first = lines.FindIndex(l => l.Text.Contains("HMMA", StringComparison.Ordinal));
        if (first < 0) return 0;
        int best = 0;
        for (int i = first; i < lines.Count; i++)
        {
            var target = Regex.Match(lines[i].Text, @"BRA\b.*?0x([0-9a-f]+)");
            if (!target.Success) continue;
            int start = lines.FindIndex(l => l.Address == Convert.ToInt32(target.Groups[1].Value, 16));
            if (start >= 0 && start <= first && (best == 0 || i - start + 1 < best)) best = i - start + 1;
        }
        return best;
    }

    [GeneratedRegex(@"/\*([0-9a-f]{4,})\*/\s+([^;]*);", RegexOptions.Multiline)]
    private static partial Regex Line();

    /// <summary>Runs a CUDA tool with nvdisasm on PATH (cuobjdump calls it).</summary>
    private static string Run(string exe, string tools, params string[] args) =>
        ProcessRunner.Run(exe, args, new Dictionary<string, string> { ["PATH"] = tools + ":" + Environment.GetEnvironmentVariable("PATH") });

    private static int Number(string text, string pattern)
    {
        var m = Regex.Match(text, pattern);
        return m.Success ? int.Parse(m.Groups[1].Value) : 0;
    }

    /// <summary>One SASS line: /*0a30*/ [@P0] MNEMONIC.MODIFIERS operands ;</summary>
    [GeneratedRegex(@"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)", RegexOptions.Multiline)]
    private static partial Regex Instruction();

    /// <summary>Double-precision arithmetic, conversion and comparison.</summary>
    [GeneratedRegex(@"^(DADD|DMUL|DFMA|DSETP|DMNMX|DSET|F2F\.F64|F2F\.F32\.F64|I2F\.F64|F2I\.F64|MUFU\.RCP64H|MUFU\.RSQ64H)")]
    private static partial Regex Fp64();
}
