using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

// Per-op comparisons (issue 5): dotnet run -c Release --project bench/NbpEngine.Benchmarks -- [--filter *MatMul*]
// In-process short runs (3 warm-up, 5 measured iterations) so the whole suite fits a 2-core machine;
// markdown reports land in bench/results/ (copy them there with machine and date when publishing).
var config = ManualConfig.CreateEmpty()
    .AddColumnProvider(BenchmarkDotNet.Columns.DefaultColumnProviders.Instance)
    .AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default)
    .AddExporter(MarkdownExporter.GitHub)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(5))
    .WithArtifactsPath(Path.Combine("bench", "results", "artifacts"));
// The CUDA/cuBLAS class runs only where a CUDA device is present (without one its setup would fail).
var types = typeof(NbpEngine.Benchmarks.MatMulBenchmarks).Assembly.GetTypes()
    .Where(t => t.IsPublic && !t.IsAbstract && t.GetMethods().Any(m => m.IsDefined(typeof(BenchmarkDotNet.Attributes.BenchmarkAttribute), false)))
    .Where(t => t != typeof(NbpEngine.Benchmarks.DeviceBenchmarks) || NbpEngine.Kernels.IlgpuDevice.CudaAvailable())
    .ToArray();
if (!NbpEngine.Kernels.IlgpuDevice.CudaAvailable()) Console.WriteLine("NbpEngine.Benchmarks: no CUDA device, DeviceBenchmarks (CUDA kernels vs cuBLAS) left out");
BenchmarkSwitcher.FromTypes(types).Run(args, config);
