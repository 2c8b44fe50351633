using System.CommandLine;
using NbpEngine.Runtime.Backends;
using NbpEngine.Cli.IO;
using NbpEngine.Tokenizer;

namespace NbpEngine.Cli.Options;

/// <summary>Options more than one command takes, declared once so every command spells and checks them alike.</summary>
internal static class SharedOptions
{
    public static Option<string> Backend()
    {
        var backend = new Option<string>("--backend", "-b") { Description = "cpu | cuda | ilgpu-cpu | auto (CUDA when present, else cpu)", DefaultValueFactory = _ => "auto" };
        backend.AcceptOnlyFromAmong("cpu", "cuda", "ilgpu-cpu", "auto");
        return backend;
    }

    public static BackendKind BackendKindOf(string? name) => name switch
    {
        "cpu" => BackendKind.Cpu, "cuda" => BackendKind.Cuda, "ilgpu-cpu" => BackendKind.IlgpuCpu, _ => BackendKind.Auto,
    };

    /// <summary>
    /// --tensor-cores / --no-tensor-cores: the ILGPU backends' prefill GEMMs and tokenizer convs on tensor cores
    /// (fp16 operands, fp32 accumulation). Neither: on for CUDA, off for ilgpu-cpu (where mma.sync is emulated).
    /// </summary>
    public static (Option<bool> On, Option<bool> Off) TensorCores() =>
        (new Option<bool>("--tensor-cores") { Description = "ILGPU backends: prefill matmuls and tokenizer convs on tensor cores, fp16 operands (default on CUDA; emulated on ilgpu-cpu)" },
         new Option<bool>("--no-tensor-cores") { Description = "ILGPU backends: fp32 prefill matmuls and tokenizer convs (no fp16 rounding)" });

    /// <summary>null (the backend's default), true or false from the two flags.</summary>
    public static bool? TensorCoresOf(ParseResult parse, (Option<bool> On, Option<bool> Off) options)
    {
        bool on = parse.GetValue(options.On), off = parse.GetValue(options.Off);
        if (on && off) throw new CliInputException("--tensor-cores and --no-tensor-cores contradict each other: give one");
        return on ? true : off ? false : null;
    }

    public static Option<int?> Threads() => new("--threads", "-t") { Description = "CPU threads (default: all cores)" };

    public static Option<int> Fps() => new("--fps") { Description = "frame rate of a video output", DefaultValueFactory = _ => 8 };

    /// <summary>The CPU tokenizer's conv algorithm (the device kernels have one: implicit GEMM).</summary>
    public static Option<ConvAlgorithm> Conv()
    {
        var conv = new Option<ConvAlgorithm>("--conv")
        {
            Description = "CPU 3x3x3 convs: auto (Winograd F(4x4,3x3) from 32x32 frames up) | im2col | winograd",
            DefaultValueFactory = _ => ConvAlgorithm.Auto,
        };
        conv.AcceptOnlyFromAmong("auto", "im2col", "winograd");
        return conv;
    }
}
