using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.TensorCores;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Core;

namespace NbpEngine.Kernels;

/// <summary>
/// One generation stream on an accelerator: a cache [layer, position, 3C] of query|key|value rows for Capacity
/// positions, activations, logits and sampler scratch, all allocated here once. The fused Q/K/V projection writes a
/// block's three rows side by side straight into the cache (one GEMM, and the append is part of it); the query third
/// of old positions is never read again, the price of a single output stride (+50% cache memory). A step enqueues
/// every kernel on one stream; the host reads back the sampled ids, and uploads ids only when they are not the last
/// sample (the prompt, the hybrid mode's middle-bos block).
/// </summary>
public sealed class DeviceSession<TW> : IDisposable where TW : struct, IWeightView
{
    private readonly Accelerator _accelerator;
    private readonly AcceleratorStream _stream;
    private readonly KernelSet<TW> _kernels;
    private readonly DeviceWeights<TW> _w;
    private readonly List<MemoryBuffer> _buffers = new();
    private readonly int _maxRows, _maxLogitRows;
    private readonly LaunchShape _shape;
    private readonly bool _tensorCores;

    /// <summary>Matmuls with at least this many rows (prefill) take the tensor-core kernel when enabled.</summary>
    public const int TensorCoreMinRows = 64;
    private readonly ArrayView<float> _cache;                     // [layer, capacity, 3C]: Q | K | V
    private readonly ArrayView<float> _x, _normed, _attended;     // [maxRows, C]
    private readonly ArrayView<float> _hidden;                    // [maxRows, 4C]
    private readonly ArrayView<float> _logits, _scaled, _weights; // [maxLogitRows, V]
    private readonly ArrayView<int> _ids;                         // [maxRows]
    private readonly ArrayView<int> _sampled;                     // [maxLogitRows]
    private readonly ArrayView<float> _partialOutput, _partialStats; // decode attention: [heads, chunks, rows, hd], [heads, chunks, rows, 2]

    public int Capacity { get; }
    public int Length { get; private set; }
    public int LogitRows { get; private set; }
    public long DeviceBytes { get; private set; }
    /// <summary>Kernels enqueued so far: a step costs 8 per layer + 4 today (issue 12 wants at most 60, or one graph).</summary>
    public long Launches { get; private set; }
    /// <summary>
    /// Host-to-device copies of fed ids so far. A step that feeds back exactly what the last Sample produced (every NBP
    /// and NTP step) embeds from the device's own sampled ids and copies nothing: a pageable copy is a host sync.
    /// </summary>
    public long IdUploads { get; private set; }
    private readonly int[] _lastSampled;
    private int _lastSampledCount;

    public DeviceSession(Accelerator accelerator, LaunchShape shape, KernelSet<TW> kernels, DeviceWeights<TW> weights, int capacity, int maxRows, int maxLogitRows,
        bool tensorCores = false)
    {
        _shape = shape;
        _tensorCores = tensorCores;
        var cfg = weights.Config;
        if (cfg.HeadSize > FlashAttentionKernel.MaxHeadSize)
            throw new ModelConfigException($"head size {cfg.HeadSize} exceeds the attention kernel's {FlashAttentionKernel.MaxHeadSize}");
        _accelerator = accelerator;
        _kernels = kernels;
        _w = weights;
        Capacity = capacity;
        _maxRows = maxRows;
        _maxLogitRows = maxLogitRows;
        _lastSampled = new int[maxLogitRows];
        long c = cfg.EmbeddingSize, v = cfg.VocabSize;
        try
        {
            _stream = accelerator.CreateStream();
            _cache = Floats(cfg.LayerCount * capacity * 3 * c);
            _x = Floats(maxRows * c);
            _normed = Floats(maxRows * c);
            _attended = Floats(maxRows * c);
            _hidden = Floats(maxRows * 4 * c);
            _logits = Floats(maxLogitRows * v);
            _scaled = Floats(maxLogitRows * v);
            _weights = Floats(maxLogitRows * v);
            _ids = Track(accelerator.Allocate1D<int>(maxRows)).View;
            _sampled = Track(accelerator.Allocate1D<int>(maxLogitRows)).View;
            int decodeRows = Math.Min(maxRows, DecodeAttentionKernel.MaxRows), chunks = DecodeAttentionKernel.Chunks(capacity);
            _partialOutput = Floats((long)cfg.HeadCount * chunks * decodeRows * cfg.HeadSize);
            _partialStats = Floats((long)cfg.HeadCount * chunks * decodeRows * 2);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private ArrayView<float> Floats(long count) => Track(_accelerator.Allocate1D<float>(count)).View;

    private T Track<T>(T buffer) where T : MemoryBuffer
    {
        _buffers.Add(buffer);
        DeviceBytes += buffer.LengthInBytes;
        return buffer;
    }

    public void Reset()
    {
        Length = 0;
        LogitRows = 0;
        _lastSampledCount = 0;
    }

    /// <summary>Feeds ids at positions Length.., appends their K/V, computes logits of the last logitRows rows.</summary>
    public void Forward(ReadOnlySpan<int> ids, int maskKind, int prefix, int block, int logitRows)
    {
        var cfg = _w.Config;
        int rows = ids.Length;
        if (rows < 1 || rows > _maxRows) throw new ArgumentOutOfRangeException(nameof(ids), rows, $"a forward call feeds 1..{_maxRows} rows");
        if (Length + rows > Capacity) throw new InvalidOperationException($"KV cache full: {Length} positions cached + {rows} new > capacity {Capacity}");
        if (logitRows < 1 || logitRows > rows || logitRows > _maxLogitRows)
            throw new ArgumentOutOfRangeException(nameof(logitRows), logitRows, $"logit rows must be in [1, {Math.Min(rows, _maxLogitRows)}]");
        foreach (int id in ids)
            if ((uint)id >= (uint)cfg.VocabSize) throw new ArgumentOutOfRangeException(nameof(ids), id, $"id {id} is outside the vocabulary [0, {cfg.VocabSize})");

        int c = cfg.EmbeddingSize, start = Length;
        var fed = _ids;
        if (rows == _lastSampledCount && ids.SequenceEqual(_lastSampled.AsSpan(0, rows))) fed = _sampled;
        else
        {
            _ids.SubView(0, rows).CopyFromCPU(_stream, ids);
            IdUploads++;
        }
        _lastSampledCount = 0; // the next Sample overwrites _sampled
        Launches++;
        _kernels.Embed(_stream, new KernelConfig(rows, _shape.GroupSize), fed, _w.TokenEmbedding, _w.PositionEmbedding, _x,
            new EmbeddingArgs { Rows = rows, Width = c, StartPosition = start });
        var attention = new AttentionArgs
        {
            Rows = rows, Heads = cfg.HeadCount, HeadSize = cfg.HeadSize, Width = c, InputStride = 3 * c, Start = start,
            MaskKind = maskKind, Prefix = prefix, Block = block, Scale = 1f / MathF.Sqrt(cfg.HeadSize),
        };
        int q = _shape.AttentionQueryRows;
        var attentionGrid = new KernelConfig(cfg.HeadCount * ((rows + q - 1) / q), q * 32);
        long layerSize = (long)Capacity * 3 * c;
        for (int layer = 0; layer < cfg.LayerCount; layer++)
        {
            var l = _w.Layers[layer];
            var cache = _cache.SubView(layer * layerSize, layerSize);
            LayerNorm(_x, rows, l.Ln1Weight, l.Ln1Bias, _normed);
            // one GEMM for Q, K and V, its rows landing in the cache at the block's positions (3C apart)
            MatMul(_normed, rows, c, l.QueryKeyValue, 3 * c, l.QueryKeyValueBias, cache.SubView((long)start * 3 * c, (long)rows * 3 * c), 3 * c, accumulate: false, gelu: false);
            var queries = cache.SubView((long)start * 3 * c);
            Attend(queries, cache.SubView(c), cache.SubView(2 * c), attention, attentionGrid);
            MatMul(_attended, rows, c, l.Proj, c, l.ProjBias, _x, c, accumulate: true, gelu: false);
            LayerNorm(_x, rows, l.Ln2Weight, l.Ln2Bias, _normed);
            MatMul(_normed, rows, c, l.Fc, 4 * c, l.FcBias, _hidden, 4 * c, accumulate: false, gelu: true);
            MatMul(_hidden, rows, 4 * c, l.Out, c, l.OutBias, _x, c, accumulate: true, gelu: false);
        }
        Length = start + rows;
        var last = _x.SubView((long)(rows - logitRows) * c, (long)logitRows * c);
        LayerNorm(last, logitRows, _w.LnFinalWeight, _w.LnFinalBias, _normed);
        Gemm(_normed, new MatMulArgs { M = logitRows, N = cfg.VocabSize, K = c, Lda = c, Ldc = cfg.VocabSize }, _w.Head, _w.NoBias, _logits);
        LogitRows = logitRows;
    }

    /// <summary>
    /// A cached step (no mask, at most 16 rows) splits the cache over key chunks (DecodeAttentionKernel: partial +
    /// combine); the prefill and anything masked take the flash kernel.
    /// </summary>
    private void Attend(ArrayView<float> queries, ArrayView<float> keys, ArrayView<float> values, AttentionArgs args, KernelConfig flashGrid)
    {
        if (args.MaskKind == MaskMath.None && args.Rows <= DecodeAttentionKernel.MaxRows)
        {
            int group = Math.Min(_shape.GroupSize, 128);
            _kernels.DecodeAttention(_stream, DecodeAttentionKernel.PartialGrid(args, group), queries, keys, values, _partialOutput, _partialStats, args);
            _kernels.DecodeAttentionCombine(_stream, DecodeAttentionKernel.CombineGrid(args, _shape.GroupSize), _partialOutput, _partialStats, _attended, args);
            Launches += 2;
            return;
        }
        _kernels.Attention(_stream, flashGrid, queries, keys, values, _attended, args);
        Launches++;
    }

    private void LayerNorm(ArrayView<float> x, int rows, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y)
    {
        Launches++;
        _kernels.LayerNorm(_stream, new KernelConfig(rows, _shape.GroupSize), x, weight, bias, y,
            new LayerNormArgs { Rows = rows, Width = _w.Config.EmbeddingSize });
    }

    private void MatMul(ArrayView<float> a, int m, int k, TW w, int n, ArrayView<float> bias, ArrayView<float> c, int ldc, bool accumulate, bool gelu)
        => Gemm(a, new MatMulArgs { M = m, N = n, K = k, Lda = k, Ldc = ldc, Accumulate = accumulate ? 1 : 0, Gelu = gelu ? 1 : 0, HasBias = 1 }, w, bias, c);

    /// <summary>
    /// The kernel for the shape: a step's few rows stream the weights (StepMatMulKernel), a prefill's many rows
    /// take tensor cores when enabled, anything else the tiled kernel.
    /// </summary>
    private void Gemm(ArrayView<float> a, MatMulArgs args, TW w, ArrayView<float> bias, ArrayView<float> c)
    {
        Launches++;
        if (StepMatMulKernel.Fits(args.M, args.K, args.Lda) && a.Length % 4 == 0)
            _kernels.StepMatMul(_stream, StepMatMulKernel.Launch(args.N, _shape.GroupSize, _accelerator.NumMultiprocessors), a.Cast<Float4>(), w, bias, c, args);
        else if (_tensorCores && args.M >= TensorCoreMinRows)
            _kernels.TensorCoreMatMul(_stream, MmaTile.Launch(args.M, args.N, MmaTile.Warps(_shape.GroupSize)), a, TensorCoreMatMulKernel.Vectors(a), w, bias, c, args);
        else _kernels.MatMul(_stream, MatMulKernel.Launch(args.M, args.N, _shape.GroupSize), a, w, bias, c, args);
    }

    /// <summary>Samples every logits row on the device and copies the ids back (the step's one read-back).</summary>
    public void Sample(SamplingArgs args, Span<int> destination)
    {
        if (destination.Length != LogitRows)
            throw new ArgumentException($"destination holds {destination.Length} tokens, the last forward produced {LogitRows} logit rows", nameof(destination));
        args.Vocab = _w.Config.VocabSize;
        Launches++;
        _kernels.Sample(_stream, new KernelConfig(LogitRows, _shape.GroupSize), _logits, _scaled, _weights, _sampled, args);
        _sampled.SubView(0, LogitRows).CopyToCPU(_stream, destination);
        _stream.Synchronize();
        destination.CopyTo(_lastSampled);
        _lastSampledCount = LogitRows;
    }

    public void CopyLogits(Span<float> destination)
    {
        long count = (long)LogitRows * _w.Config.VocabSize;
        if (destination.Length != count) throw new ArgumentException($"destination holds {destination.Length} floats, logits are [{LogitRows}, {_w.Config.VocabSize}]");
        _logits.SubView(0, count).CopyToCPU(_stream, destination);
        _stream.Synchronize();
    }

    public void Dispose()
    {
        _stream?.Dispose();
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }
}
