using NbpEngine.Loader.Checkpoint;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Runtime.Threading;
using NbpEngine.Core;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// One generation stream on the CPU: KV cache for <see cref="Capacity"/> positions, activations for
/// maxRows rows, logits, per-worker scratch, all allocated here once. Forward and Sample then
/// allocate nothing.
/// </summary>
public sealed unsafe class CpuBackendSession : IBackendSession
{
    private readonly TransformerWeights _w;
    private readonly PackedTransformerWeights? _packed; // null: the dot-product GEMM on _w's matrices
    private readonly ModelConfig _config;
    private readonly NativeArena _arena = new();
    private readonly WorkerPool _pool;
    private readonly int _maxRows, _maxLogitRows;

    // [layer, position, C]: a whole block is appended by writing its K/V rows straight from the GEMM.
    private readonly float* _keyCache, _valueCache;
    private readonly float* _x, _normed, _query, _attended; // [maxRows, C]
    private readonly float* _hidden;                        // [maxRows, 4C]
    private readonly float* _logits;                        // [maxLogitRows, V]
    private readonly int* _keyEnds;                         // [maxRows]
    private readonly int* _sampled;                         // [maxRows]

    private readonly MatMulJob _matMul = new();
    private readonly PackedMatMulJob _packedMatMul = new();
    private readonly LayerNormJob _layerNorm = new();
    private readonly AttentionJob _attention;
    private readonly SampleJob _sample;

    public int Capacity { get; }
    public int Length { get; private set; }
    public int LogitRows { get; private set; }
    /// <summary>Native bytes this session holds (cache + activations + scratch).</summary>
    public long NativeBytes => _arena.Bytes;

    public CpuBackendSession(TransformerWeights weights, PackedTransformerWeights? packed, int capacity, int maxRows, int maxLogitRows, int threads)
    {
        _w = weights;
        _packed = packed;
        _config = weights.Config;
        if (capacity < 1 || capacity > _config.PositionCount)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"KV cache capacity must be in [1, {_config.PositionCount}] (learned positions)");
        if (maxRows < 1 || maxRows > capacity)
            throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, $"rows per call must be in [1, {capacity}]");
        if (maxLogitRows < 1 || maxLogitRows > maxRows)
            throw new ArgumentOutOfRangeException(nameof(maxLogitRows), maxLogitRows, $"logit rows per call must be in [1, {maxRows}]");
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "at least one thread");
        Capacity = capacity;
        _maxRows = maxRows;
        _maxLogitRows = maxLogitRows;
        int c = _config.EmbeddingSize, v = _config.VocabSize;
        long cache = (long)_config.LayerCount * capacity * c;
        _keyCache = _arena.Floats(cache);
        _valueCache = _arena.Floats(cache);
        _x = _arena.Floats((long)maxRows * c);
        _normed = _arena.Floats((long)maxRows * c);
        _query = _arena.Floats((long)maxRows * c);
        _attended = _arena.Floats((long)maxRows * c);
        _hidden = _arena.Floats((long)maxRows * 4 * c);
        _logits = _arena.Floats((long)maxLogitRows * v);
        _keyEnds = _arena.Ints(maxRows);
        _sampled = _arena.Ints(maxLogitRows);

        _pool = new WorkerPool(threads);
        var scores = new float*[threads];
        var scaled = new float*[threads];
        var keys = new ulong*[threads];
        for (int t = 0; t < threads; t++)
        {
            scores[t] = _arena.Floats((long)CpuAttention.TileRows * capacity);
            scaled[t] = _arena.Floats(v);
            keys[t] = _arena.ULongs(v);
        }
        _attention = new AttentionJob(scores);
        _sample = new SampleJob(scaled, keys);
    }

    public long? OwnThreadsAllocatedBytes => _pool.HelperAllocatedBytes;

    public void Reset()
    {
        Length = 0;
        LogitRows = 0;
    }

    public void Forward(ReadOnlySpan<int> tokens, AttentionMask mask, int logitRows)
    {
        int rows = tokens.Length;
        if (rows < 1 || rows > _maxRows)
            throw new ArgumentOutOfRangeException(nameof(tokens), rows, $"a forward call feeds 1..{_maxRows} rows (the session's maxRows)");
        if (Length + rows > Capacity)
            throw new InvalidOperationException($"KV cache full: {Length} positions cached + {rows} new > capacity {Capacity}");
        if (logitRows < 1 || logitRows > rows || logitRows > _maxLogitRows)
            throw new ArgumentOutOfRangeException(nameof(logitRows), logitRows, $"logit rows must be in [1, {Math.Min(rows, _maxLogitRows)}]");

        int c = _config.EmbeddingSize, v = _config.VocabSize, start = Length, total = start + rows;
        // x[r] = tok_emb[id] + pos_emb[start + r]    // [rows, C]
        for (int r = 0; r < rows; r++)
        {
            int id = tokens[r];
            if ((uint)id >= (uint)v) throw new ArgumentOutOfRangeException(nameof(tokens), id, $"token {r} has id {id}, outside the vocabulary [0, {v})");
            float* e = _w.TokenEmbedding + (long)id * c, p = _w.PositionEmbedding + (long)(start + r) * c, x = _x + (long)r * c;
            System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(e, c), new ReadOnlySpan<float>(p, c), new Span<float>(x, c));
            _keyEnds[r] = mask.KeyEnd(start + r, total);
        }

        int heads = _config.HeadCount, hd = _config.HeadSize;
        for (int layer = 0; layer < _config.LayerCount; layer++)
        {
            ref readonly var L = ref _w.Layers[layer];
            float* kCache = _keyCache + (long)layer * Capacity * c, vCache = _valueCache + (long)layer * Capacity * c;
            _layerNorm.Run(_pool, _x, rows, c, L.Ln1Weight, L.Ln1Bias, _normed);
            var P = _packed?.Layers[layer];
            Linear(_normed, rows, c, L.QueryWeight, P?.Query, c, L.QueryBias, _query, c, GemmStore.Overwrite);
            Linear(_normed, rows, c, L.KeyWeight, P?.Key, c, L.KeyBias, kCache + (long)start * c, c, GemmStore.Overwrite);
            Linear(_normed, rows, c, L.ValueWeight, P?.Value, c, L.ValueBias, vCache + (long)start * c, c, GemmStore.Overwrite);
            _attention.Run(_pool, _query, rows, kCache, vCache, _keyEnds, heads, hd, _attended);
            Linear(_attended, rows, c, L.ProjWeight, P?.Proj, c, L.ProjBias, _x, c, GemmStore.Accumulate);
            _layerNorm.Run(_pool, _x, rows, c, L.Ln2Weight, L.Ln2Bias, _normed);
            Linear(_normed, rows, c, L.FcWeight, P?.Fc, 4 * c, L.FcBias, _hidden, 4 * c, GemmStore.Overwrite, gelu: true);
            Linear(_hidden, rows, 4 * c, L.OutWeight, P?.Out, c, L.OutBias, _x, c, GemmStore.Accumulate);
        }
        Length = total;

        // Only the rows that are sampled need the final norm and the vocabulary head.
        float* last = _x + (long)(rows - logitRows) * c;
        _layerNorm.Run(_pool, last, logitRows, c, _w.LnFinalWeight, _w.LnFinalBias, _normed);
        Linear(_normed, logitRows, c, _w.Head, _packed?.Head, v, null, _logits, v, GemmStore.Overwrite);
        LogitRows = logitRows;
    }

    /// <summary>
    /// c = a·Wᵀ + bias through the packed copy when there is one and the call has at least one full 8-row
    /// register tile, else the in-place matrix: for one or a few rows (NTP steps, hybrid mode's first
    /// block) the packed kernel's single-row path was ~30% slower in nbp-bench (block 1: 68.4 s vs 51.3 s).
    /// </summary>
    private void Linear(float* a, int m, int k, float* w, PackedWeights? packed, int n, float* bias, float* c, int ldc, GemmStore store, bool gelu = false)
    {
        if (packed is not null && m >= PackedGemm.RowTile) _packedMatMul.Run(_pool, a, m, k, packed, bias, c, ldc, store, gelu);
        else _matMul.Run(_pool, a, m, k, w, n, bias, c, ldc, store, gelu);
    }

    public void Sample(in SamplingSettings settings, ulong seed, int step, Span<int> destination)
    {
        if (destination.Length != LogitRows)
            throw new ArgumentException($"destination holds {destination.Length} tokens, the last forward produced {LogitRows} logit rows", nameof(destination));
        _sample.Run(_pool, _logits, LogitRows, _config.VocabSize, settings, seed, step, _sampled);
        new ReadOnlySpan<int>(_sampled, LogitRows).CopyTo(destination);
    }

    public void CopyLogits(Span<float> destination)
    {
        long count = (long)LogitRows * _config.VocabSize;
        if (destination.Length != count)
            throw new ArgumentException($"destination holds {destination.Length} floats, logits are [{LogitRows}, {_config.VocabSize}]", nameof(destination));
        new ReadOnlySpan<float>(_logits, (int)count).CopyTo(destination);
    }

    public void Dispose()
    {
        _pool.Dispose();
        _arena.Dispose();
    }
}
