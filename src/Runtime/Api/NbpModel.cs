using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Loader.Safetensors;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Generation;
using NbpEngine.Core;

namespace NbpEngine.Runtime.Api;

/// <summary>Load-time options; fixed for the life of the model.</summary>
public sealed record NbpModelOptions
{
    public ModelConfigOverrides Overrides { get; init; } = new();
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;
    /// <summary>CPU backend: packed copies of the matrices (faster, +1 copy in memory) or the loaded ones in place.</summary>
    public CpuWeightLayout CpuWeights { get; init; } = CpuWeightLayout.Packed;
    /// <summary>Scan the weights for NaN and infinities when loading (a vectorised pass; the default). Turn off only for trusted multi-GB files.</summary>
    public bool CheckFinite { get; init; } = true;
    /// <summary>
    /// The accelerator backends (NbpEngine.Kernels' <c>IlgpuBackends.Provider</c>); null: CPU only, and
    /// <see cref="BackendKind.Auto"/> means the CPU.
    /// </summary>
    public IDeviceBackends? DeviceBackends { get; init; }
}

/// <summary>
/// An NBP transformer loaded once: immutable, thread-safe, shared by any number of
/// <see cref="NbpSession"/>s. The model owns its weights (and the file mapping); dispose it after
/// every session made from it.
/// </summary>
public sealed class NbpModel : IDisposable
{
    private readonly TransformerWeights _weights;
    private readonly Lazy<CpuBackend> _cpu;
    private readonly Dictionary<(BackendKind, WeightStorage, bool), IComputeBackend> _devices = new();
    private readonly ILogger _logger;
    private readonly object _lifetime = new();
    private int _liveSessions;
    private bool _disposed;

    public ModelConfig Config => _weights.Config;
    public string SourcePath { get; }
    /// <summary>Parameters in the transformer (weights mapped or converted).</summary>
    public long ParameterCount => _weights.ParameterCount;
    /// <summary>Whether the checkpoint has a transformer.uncond_embedding, which classifier-free guidance needs.</summary>
    public unsafe bool HasUnconditionalEmbedding => _weights.UnconditionalEmbedding != null;

    private readonly IDeviceBackends? _deviceBackends;

    private NbpModel(TransformerWeights weights, string path, ILogger logger, CpuWeightLayout cpuWeights, IDeviceBackends? deviceBackends)
    {
        _weights = weights;
        _deviceBackends = deviceBackends;
        SourcePath = path;
        _logger = logger;
        _cpu = new Lazy<CpuBackend>(() => new CpuBackend(_weights, cpuWeights));
    }

    /// <summary>Opens, validates and maps a safetensors checkpoint (MODEL.md §2).</summary>
    public static Task<NbpModel> LoadAsync(string path, NbpModelOptions? options = null, IProgress<float>? progress = null, CancellationToken cancellationToken = default)
    {
        options ??= new NbpModelOptions();
        var logger = options.LoggerFactory.CreateLogger("NbpEngine.Loader");
        return Task.Run(() =>
        {
            var file = SafetensorsFile.Open(path);
            try
            {
                var config = ModelConfigReader.Read(file, options.Overrides, logger);
                var weights = TransformerWeights.Load(file, config, logger, progress, cancellationToken, options.CheckFinite);
                return new NbpModel(weights, path, logger, options.CpuWeights, options.DeviceBackends);
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }, cancellationToken);
    }

    /// <summary>A new session with its own KV cache. Dispose it before the model.</summary>
    public NbpSession CreateSession(SessionOptions? options = null)
    {
        options ??= new SessionOptions();
        lock (_lifetime)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _liveSessions++; // counted before the backend is touched, so Dispose cannot free it under us
        }
        try
        {
            return OpenSession(options);
        }
        catch
        {
            SessionClosed();
            throw;
        }
    }

    private NbpSession OpenSession(SessionOptions options)
    {
        bool guidance = GuidanceOn(options);
        var (backend, session) = OpenBackendSession(options, guidance ? 2 : 1);
        return new NbpSession(this, session, backend.Name, guidance);
    }

    /// <summary>Whether sessions made with <paramref name="options"/> hold an unconditional stream beside each sequence.</summary>
    private bool GuidanceOn(SessionOptions options)
    {
        if (options.Guidance == true && !HasUnconditionalEmbedding)
            throw new GenerationException($"{SourcePath}: classifier-free guidance needs transformer.uncond_embedding [cond_token_num, C]; this checkpoint has none");
        return options.Guidance ?? HasUnconditionalEmbedding;
    }

    /// <summary>
    /// A batch session: <paramref name="slots"/> sequences with a KV cache each, stepped together so each step streams the
    /// weights once for all of them (<see cref="NbpBatchSession"/>). Capacity, block size, backend and threads come from
    /// <paramref name="options"/> as for <see cref="CreateSession"/> and apply to every slot. Dispose it before the model.
    /// </summary>
    public NbpBatchSession CreateBatchSession(int slots, SessionOptions? options = null)
    {
        if (slots < 1) throw new ArgumentOutOfRangeException(nameof(slots), slots, "a batch session needs at least one slot");
        options ??= new SessionOptions();
        lock (_lifetime)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _liveSessions++;
        }
        try
        {
            bool guidance = GuidanceOn(options);
            var (backend, session) = OpenBackendSession(options, guidance ? 2 * slots : slots);
            return new NbpBatchSession(this, session, backend.Name, slots, guidance);
        }
        catch
        {
            SessionClosed();
            throw;
        }
    }

    /// <summary>A backend session of <paramref name="sequences"/> sequences: a step of all of them, or all their prefills, fits one call.</summary>
    private (IComputeBackend, IBackendSession) OpenBackendSession(SessionOptions options, int sequences)
    {
        var backend = ResolveBackend(options);
        int capacity = options.Capacity ?? Math.Min(Config.PositionCount, Config.VideoTokenCount + Config.CondTokenCount + Config.BlockSize);
        int maxLogitRows = Math.Min(options.MaxBlockSize ?? Config.BlockSize, capacity);
        int threads = options.Threads ?? Environment.ProcessorCount;
        var session = backend.CreateSession(sequences, capacity, checked(sequences * capacity), checked(sequences * maxLogitRows), threads);
        session.UseFusedLayers(options.FusedLayers);
        if (options.CudaGraphs && !session.TryEnableStepGraphs())
        {
            session.Dispose();
            throw new BackendUnavailableException($"CUDA graphs need the CUDA backend and a CUDA 12+ driver; this session runs on {backend.Name}");
        }
        if (options.TensorCoreSteps && !session.TryUseTensorCoreSteps())
        {
            session.Dispose();
            throw new BackendUnavailableException($"tensor-core steps need an ILGPU backend (cuda, or ilgpu-cpu's emulation); this session runs on {backend.Name}");
        }
        return (backend, session);
    }

    private IComputeBackend ResolveBackend(SessionOptions options)
    {
        var kind = options.Backend;
        if (kind == BackendKind.Auto)
        {
            kind = _deviceBackends is { CudaAvailable: true } ? BackendKind.Cuda : BackendKind.Cpu;
            _logger.LogInformation("backend auto: {Kind}", kind);
        }
        var storage = options.DeviceWeightsOn(kind);
        bool tensorCores = options.TensorCoresOn(kind);
        if (kind == BackendKind.Cpu)
        {
            if (options.DeviceWeights is { } asked && asked != WeightStorage.F32) _logger.LogInformation("the CPU backend computes with the checkpoint's weights as loaded (fp32); device weight storage {Storage} ignored", asked);
            return _cpu.Value;
        }
        if (_deviceBackends is null)
            throw new BackendUnavailableException($"backend {kind} needs the ILGPU kernels: load the model with NbpModelOptions.DeviceBackends = " +
                                                  "IlgpuBackends.Provider (package NbpEngine.Kernels), or through NbpPipeline");
        // One upload of the weights per device and storage, shared by all sessions of this model.
        lock (_devices)
        {
            if (!_devices.TryGetValue((kind, storage, tensorCores), out var backend))
                _devices[(kind, storage, tensorCores)] = backend = _deviceBackends.Create(kind, _weights, storage, tensorCores);
            return backend;
        }
    }

    /// <summary>Resolves <paramref name="request"/> against the model and a KV cache of <paramref name="capacity"/> positions.</summary>
    internal GenerationPlan PlanFor(GenerationRequest request, int capacity, bool guidance, string cache, string owner)
    {
        var plan = GenerationPlan.Resolve(request, Config);
        if (plan.PositionsNeeded > capacity)
            throw new GenerationException($"generation needs {plan.PositionsNeeded} positions, {cache} holds {capacity}; create {owner} with a larger Capacity");
        if (plan.Guided && !HasUnconditionalEmbedding)
            throw new GenerationException($"{SourcePath}: classifier-free guidance (scale {plan.GuidanceScale}) needs transformer.uncond_embedding [cond_token_num, C]; this checkpoint has none");
        if (plan.Guided && !guidance)
            throw new GenerationException($"classifier-free guidance needs an unconditional stream beside the request: create {owner} with SessionOptions.Guidance = true");
        return plan;
    }

    /// <summary>A session of this model was disposed.</summary>
    internal void SessionClosed()
    {
        lock (_lifetime) _liveSessions--;
    }

    /// <summary>
    /// Frees the weights and device copies. Throws <see cref="InvalidOperationException"/> while sessions of this
    /// model are alive (they use this memory): dispose them first.
    /// </summary>
    public void Dispose()
    {
        lock (_lifetime)
        {
            if (_disposed) return;
            if (_liveSessions > 0)
                throw new InvalidOperationException($"{_liveSessions} session(s) of this model are still alive; dispose them before the model");
            _disposed = true;
        }
        foreach (var backend in _devices.Values) backend.Dispose();
        if (_cpu.IsValueCreated) _cpu.Value.Dispose();
        _weights.Dispose();
    }
}

/// <summary>Per-session options, fixed when the session is created.</summary>
public sealed record SessionOptions
{
    public BackendKind Backend { get; init; } = BackendKind.Auto;
    /// <summary>CPU threads; default all cores.</summary>
    public int? Threads { get; init; }
    /// <summary>KV cache positions; default one clip (video tokens + condition + one block), at most the model's positions.</summary>
    public int? Capacity { get; init; }
    /// <summary>Largest block size a generation will use; default the checkpoint's token_number_per_step.</summary>
    public int? MaxBlockSize { get; init; }
    /// <summary>
    /// How weight matrices are stored on an ILGPU device (fp32 accumulation always). Null: fp16 on CUDA (a step
    /// streams half the bytes; step-0 logits within 1e-3 relative of fp32 on the test fixtures), fp32 on the ILGPU CPU
    /// accelerator (the reference the parity suite compares with the CPU backend).
    /// </summary>
    public WeightStorage? DeviceWeights { get; init; }
    /// <summary>
    /// ILGPU backends: prefill matmuls (64+ rows) on tensor cores, operands rounded to fp16, fp32 accumulation
    /// (step-0 logits within 1e-3 relative of fp32 on the test fixtures; greedy tokens can differ from the fp32
    /// reference where two logits nearly tie). Null: on for CUDA, off for the ILGPU CPU accelerator (where the
    /// instruction is emulated); true or false forces it.
    /// </summary>
    public bool? TensorCores { get; init; }
    /// <summary>
    /// Room for classifier-free guidance: a second KV cache per sequence for the unconditional stream (twice the cache
    /// memory). Null: on when the checkpoint has a transformer.uncond_embedding; true on a checkpoint without one throws.
    /// </summary>
    public bool? Guidance { get; init; }
    /// <summary>
    /// CUDA backend: each generation step (every sequence fed its own last sample) is captured as a CUDA graph, updated
    /// in place with the step's arguments and launched once, instead of ~150 kernel launches (issue 12). Off by default
    /// until measured on a GPU (bench/RESULTS.md); true on another backend throws.
    /// </summary>
    public bool CudaGraphs { get; init; }
    /// <summary>
    /// ILGPU backends: a generation step of one sequence runs each transformer layer as ONE launch (its four GEMMs and
    /// the split-key attention as phases of one kernel, the same arithmetic and bits) instead of six: 28 launches for
    /// K600's 24 layers instead of 148 (issue 12). On by default; false runs the separate kernels.
    /// </summary>
    public bool FusedLayers { get; init; } = true;
    /// <summary>
    /// ILGPU backends: a generation step's GEMMs on tensor cores (mma.sync on CUDA; the step's rows rounded to fp16, so
    /// the logits move by ~1e-4 of their range and a near tie may pick another token) instead of fp32 FMAs, with the
    /// separate kernels a layer. Off by default until measured on a GPU (bench/RESULTS.md); true on the CPU backend throws.
    /// </summary>
    public bool TensorCoreSteps { get; init; }

    /// <summary>The weight storage a session on <paramref name="kind"/> gets (the null default resolved).</summary>
    public WeightStorage DeviceWeightsOn(BackendKind kind) => DeviceWeights ?? (kind == BackendKind.Cuda ? WeightStorage.F16 : WeightStorage.F32);

    /// <summary>Whether a session on <paramref name="kind"/> runs its prefill on tensor cores (the null default resolved).</summary>
    public bool TensorCoresOn(BackendKind kind) => TensorCores ?? TensorCoresByDefault(kind);

    /// <summary>The default, for the transformer and the device tokenizer alike: on for CUDA, off where mma.sync is emulated.</summary>
    public static bool TensorCoresByDefault(BackendKind kind) => kind == BackendKind.Cuda;
}
