using NbpEngine.Loader.Checkpoint;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Runtime.Threading;
using NbpEngine.Core;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// One or more generation sequences on the CPU: a KV cache per sequence for <see cref="Capacity"/> positions,
/// activations for maxRows rows of all sequences together, logits, per-worker scratch, all allocated here once. Forward
/// and Sample then allocate nothing. A call's rows go through each weight matrix together (one weight read per call);
/// batch invariance comes from choosing each sequence's GEMM kernel by its own row count (see <see cref="Arrange"/>).
/// </summary>
public sealed unsafe class CpuBackendSession : IBackendSession
{
    private readonly TransformerWeights _w;
    private readonly PackedTransformerWeights? _packed; // null: the dot-product GEMM on _w's matrices
    private readonly ModelConfig _config;
    private readonly NativeArena _arena = new();
    private readonly WorkerPool _pool;
    private readonly int _maxRows, _maxLogitRows;

    // [sequence, layer, position, C]: a block's K/V rows are computed for all sequences at once into _key/_value, then
    // copied to each sequence's positions
    private readonly float* _keyCache, _valueCache;
    private readonly long _sequenceStride;
    private readonly float* _x, _normed, _query, _key, _value, _attended; // [maxRows, C]
    private readonly float* _hidden;                                    // [maxRows, 4C]
    private readonly float* _logits;                                    // [maxLogitRows, V]
    private readonly int* _keyEnds;                                     // [maxRows]
    private readonly int* _sampled;                                     // [maxLogitRows]

    // per sequence; per feed of the current call (where its rows and logit rows start in the activations)
    private readonly int[] _lengths, _logitRows, _logitStart;
    private readonly int[] _rowStart, _feedLogitStart;

    private readonly MatMulJob _matMul = new();
    private readonly PackedMatMulJob _packedMatMul = new();
    private readonly LayerNormJob _layerNorm = new();
    private readonly AttentionJob _attention;
    private readonly SampleJob _sample;

    public int Sequences { get; }
    public int Capacity { get; }
    /// <summary>Native bytes this session holds (caches + activations + scratch).</summary>
    public long NativeBytes => _arena.Bytes;

    public CpuBackendSession(TransformerWeights weights, PackedTransformerWeights? packed, int sequences, int capacity, int maxRows, int maxLogitRows, int threads)
    {
        _w = weights;
        _packed = packed;
        _config = weights.Config;
        if (sequences < 1) throw new ArgumentOutOfRangeException(nameof(sequences), sequences, "at least one sequence");
        if (capacity < 1 || capacity > _config.PositionCount)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"KV cache capacity must be in [1, {_config.PositionCount}] (learned positions)");
        if (maxRows < 1 || maxRows > (long)sequences * capacity)
            throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, $"rows per call must be in [1, {(long)sequences * capacity}]");
        if (maxLogitRows < 1 || maxLogitRows > maxRows)
            throw new ArgumentOutOfRangeException(nameof(maxLogitRows), maxLogitRows, $"logit rows per call must be in [1, {maxRows}]");
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "at least one thread");
        Sequences = sequences;
        Capacity = capacity;
        _maxRows = maxRows;
        _maxLogitRows = maxLogitRows;
        int c = _config.EmbeddingSize, v = _config.VocabSize;
        _sequenceStride = (long)_config.LayerCount * capacity * c;
        _keyCache = _arena.Floats(sequences * _sequenceStride);
        _valueCache = _arena.Floats(sequences * _sequenceStride);
        _x = _arena.Floats((long)maxRows * c);
        _normed = _arena.Floats((long)maxRows * c);
        _query = _arena.Floats((long)maxRows * c);
        _key = _arena.Floats((long)maxRows * c);
        _value = _arena.Floats((long)maxRows * c);
        _attended = _arena.Floats((long)maxRows * c);
        _hidden = _arena.Floats((long)maxRows * 4 * c);
        _logits = _arena.Floats((long)maxLogitRows * v);
        _keyEnds = _arena.Ints(maxRows);
        _sampled = _arena.Ints(maxLogitRows);
        _lengths = new int[sequences];
        _logitRows = new int[sequences];
        _logitStart = new int[sequences];
        _rowStart = new int[sequences];
        _feedLogitStart = new int[sequences];

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
        _attention = new AttentionJob(scores, sequences);
        _sample = new SampleJob(scaled, keys);
    }

    public long? OwnThreadsAllocatedBytes => _pool.HelperAllocatedBytes;

    public int LengthOf(int sequence) => _lengths[sequence];
    public int LogitRowsOf(int sequence) => _logitRows[sequence];

    public void Reset(int sequence)
    {
        _lengths[sequence] = 0;
        _logitRows[sequence] = 0;
    }

    public void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<SequenceFeed> feeds)
    {
        SequenceFeed.Validate(feeds, tokens.Length, _maxRows, _maxLogitRows, _lengths, Capacity, _w.UnconditionalEmbedding == null ? 0 : _config.CondTokenCount);
        int c = _config.EmbeddingSize, v = _config.VocabSize;
        int packedRows = Arrange(feeds, logits: false, _rowStart, out int rows);
        int packedLogitRows = Arrange(feeds, logits: true, _feedLogitStart, out int logitRows);

        // x[r] = tok_emb[id] + pos_emb[start + r]    // [rows, C], each sequence's rows where Arrange put them
        // (uncond_embedding[r] in place of tok_emb[id] for a feed's unconditional rows)
        int taken = 0;
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            int start = _lengths[feed.Sequence], total = start + feed.Rows;
            for (int r = 0; r < feed.Rows; r++)
            {
                int id = tokens[taken + r], row = _rowStart[f] + r;
                if ((uint)id >= (uint)v) throw new ArgumentOutOfRangeException(nameof(tokens), id, $"sequence {feed.Sequence}, token {r} has id {id}, outside the vocabulary [0, {v})");
                float* e = r < feed.UnconditionalRows ? _w.UnconditionalEmbedding + (long)r * c : _w.TokenEmbedding + (long)id * c;
                float* p = _w.PositionEmbedding + (long)(start + r) * c, x = _x + (long)row * c;
                System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(e, c), new ReadOnlySpan<float>(p, c), new Span<float>(x, c));
                _keyEnds[row] = feed.Mask.KeyEnd(start + r, total);
            }
            taken += feed.Rows;
        }

        int heads = _config.HeadCount, hd = _config.HeadSize;
        long layerSize = (long)Capacity * c;
        for (int layer = 0; layer < _config.LayerCount; layer++)
        {
            ref readonly var L = ref _w.Layers[layer];
            _layerNorm.Run(_pool, _x, rows, c, L.Ln1Weight, L.Ln1Bias, _normed);
            var P = _packed?.Layers[layer];
            Linear(_normed, rows, packedRows, c, L.QueryWeight, P?.Query, c, L.QueryBias, _query, c, GemmStore.Overwrite);
            Linear(_normed, rows, packedRows, c, L.KeyWeight, P?.Key, c, L.KeyBias, _key, c, GemmStore.Overwrite);
            Linear(_normed, rows, packedRows, c, L.ValueWeight, P?.Value, c, L.ValueBias, _value, c, GemmStore.Overwrite);
            _attention.Begin(heads, hd);
            for (int f = 0; f < feeds.Length; f++)
            {
                var feed = feeds[f];
                long at = (long)_rowStart[f] * c, position = (long)_lengths[feed.Sequence] * c, count = (long)feed.Rows * c;
                float* kCache = _keyCache + feed.Sequence * _sequenceStride + layer * layerSize;
                float* vCache = _valueCache + feed.Sequence * _sequenceStride + layer * layerSize;
                Buffer.MemoryCopy(_key + at, kCache + position, count * sizeof(float), count * sizeof(float));
                Buffer.MemoryCopy(_value + at, vCache + position, count * sizeof(float), count * sizeof(float));
                _attention.Add(_query + at, feed.Rows, kCache, vCache, _keyEnds + _rowStart[f], _attended + at);
            }
            _attention.Run(_pool);
            Linear(_attended, rows, packedRows, c, L.ProjWeight, P?.Proj, c, L.ProjBias, _x, c, GemmStore.Accumulate);
            _layerNorm.Run(_pool, _x, rows, c, L.Ln2Weight, L.Ln2Bias, _normed);
            Linear(_normed, rows, packedRows, c, L.FcWeight, P?.Fc, 4 * c, L.FcBias, _hidden, 4 * c, GemmStore.Overwrite, gelu: true);
            Linear(_hidden, rows, packedRows, 4 * c, L.OutWeight, P?.Out, c, L.OutBias, _x, c, GemmStore.Accumulate);
        }

        // Only the rows that are sampled need the final norm and the vocabulary head: each sequence's last LogitRows;
        // a guiding feed's normed rows are blended into its guided sequence's (SequenceFeed.GuidesSequence) and go no further.
        Array.Clear(_logitRows);
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            float* last = _x + (long)(_rowStart[f] + feed.Rows - feed.LogitRows) * c;
            _layerNorm.Run(_pool, last, feed.LogitRows, c, _w.LnFinalWeight, _w.LnFinalBias, _normed + (long)_feedLogitStart[f] * c);
            _lengths[feed.Sequence] += feed.Rows;
            _logitRows[feed.Sequence] = feed.Guides ? 0 : feed.LogitRows;
            _logitStart[feed.Sequence] = _feedLogitStart[f];
        }
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            if (!feed.Guides) continue;
            long count = (long)feed.LogitRows * c;
            var own = new Span<float>(_normed + (long)_feedLogitStart[SequenceFeed.FeedOf(feeds, feed.GuidesSequence)] * c, (int)count);
            Guidance.Blend(own, new ReadOnlySpan<float>(_normed + (long)_feedLogitStart[f] * c, (int)count), feed.GuidanceScale);
        }
        Linear(_normed, logitRows, packedLogitRows, c, _w.Head, _packed?.Head, v, null, _logits, v, GemmStore.Overwrite);
    }

    /// <summary>
    /// Where each feed's rows go (<see cref="SequenceFeed.Arrange"/>): feeds with at least <see cref="PackedGemm.RowTile"/>
    /// rows first (the packed kernel's, when there is a packed copy), then the rest (the dot-product kernel's). Both
    /// kernels give a row the same sums wherever it sits, so a sequence's numbers are the ones it gets alone.
    /// </summary>
    private int Arrange(ReadOnlySpan<SequenceFeed> feeds, bool logits, int[] start, out int total) =>
        SequenceFeed.Arrange(feeds, logits, _packed is null ? static _ => false : static rows => rows >= PackedGemm.RowTile, start, out total);

    /// <summary>
    /// c = a·Wᵀ + bias: rows [0, packedRows) through the packed copy, the rest through the dot-product GEMM on the matrix
    /// in place (see <see cref="Arrange"/>; a batch whose sequences are in the same phase reads the weights once). For one
    /// or a few rows (NTP steps, hybrid mode's first block) the packed kernel's single-row path was ~30% slower in
    /// nbp-bench (block 1: 68.4 s vs 51.3 s).
    /// </summary>
    private void Linear(float* a, int rows, int packedRows, int k, float* w, PackedWeights? packed, int n, float* bias, float* c, int ldc, GemmStore store, bool gelu = false)
    {
        if (packedRows > 0) _packedMatMul.Run(_pool, a, packedRows, k, packed!, bias, c, ldc, store, gelu);
        if (rows > packedRows) _matMul.Run(_pool, a + (long)packedRows * k, rows - packedRows, k, w, n, bias, c + (long)packedRows * ldc, ldc, store, gelu);
    }

    public void Sample(int sequence, in SamplingSettings settings, ulong seed, int step, Span<int> destination)
    {
        int rows = _logitRows[sequence];
        if (destination.Length != rows)
            throw new ArgumentException($"destination holds {destination.Length} tokens, the last forward produced {rows} logit rows for sequence {sequence}", nameof(destination));
        int v = _config.VocabSize, first = _logitStart[sequence];
        _sample.Run(_pool, _logits + (long)first * v, rows, v, settings, seed, step, _sampled + first);
        new ReadOnlySpan<int>(_sampled + first, rows).CopyTo(destination);
    }

    public void CopyLogits(int sequence, Span<float> destination)
    {
        long count = (long)_logitRows[sequence] * _config.VocabSize;
        if (destination.Length != count)
            throw new ArgumentException($"destination holds {destination.Length} floats, logits of sequence {sequence} are [{_logitRows[sequence]}, {_config.VocabSize}]", nameof(destination));
        new ReadOnlySpan<float>(_logits + (long)_logitStart[sequence] * _config.VocabSize, (int)count).CopyTo(destination);
    }

    public void Dispose()
    {
        _pool.Dispose();
        _arena.Dispose();
    }
}
