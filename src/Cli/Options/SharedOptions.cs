using System.CommandLine;
using NbpEngine.Runtime.Backends;
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
