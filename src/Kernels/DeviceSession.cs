using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.TensorCores;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Core;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Kernels;

/// <summary>
/// One or more generation sequences on an accelerator: a cache [sequence, layer, position, 3C] of query|key|value rows
/// for Capacity positions each, activations for all sequences' rows together, logits and sampler scratch, all
/// allocated here once. The fused Q/K/V projection writes a block's three rows side by side straight into the cache
/// (one GEMM, and the append is part of it); the query third of old positions is never read again, the price of a
/// single output stride (+50% cache memory). A step enqueues every kernel on one stream; the host reads back the
/// sampled ids, and uploads ids only when they are not a sequence's last sample (the prompt, the hybrid mode's
/// middle-bos block). With several sequences the row-wise kernels (LayerNorm) run once over all rows, while each
/// sequence gets its own GEMM, attention and sampling launches: the step GEMM holds at most 16 rows (one block), so a
/// batch on the device shares launches, not weight reads, until a wider step GEMM exists (issue 12).
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
    private readonly ArrayView<float> _cache;                     // [sequence, layer, capacity, 3C]: Q | K | V
    private readonly ArrayView<float> _x, _normed, _attended;     // [maxRows, C]
    private readonly ArrayView<float> _hidden;                    // [maxRows, 4C]
    private readonly ArrayView<float> _logits, _scaled, _weights; // [maxLogitRows, V]
    private readonly ArrayView<int> _ids;                         // [maxRows]
    private readonly ArrayView<int> _sampled;                     // [maxLogitRows]
    private readonly ArrayView<float> _partialOutput, _partialStats; // decode attention: [heads, chunks, rows, hd], [heads, chunks, rows, 2]

    public int Sequences { get; }
    public int Capacity { get; }
    public long DeviceBytes { get; private set; }
    /// <summary>Kernels enqueued so far: a one-sequence step costs 8 per layer + 4 today (issue 12 wants at most 60, or one graph).</summary>
    public long Launches { get; private set; }
    /// <summary>
    /// Host-to-device copies of fed ids so far. A sequence fed exactly what its last Sample produced (every NBP and NTP
    /// step) embeds from the device's own sampled ids and copies nothing: a pageable copy is a host sync.
    /// </summary>
    public long IdUploads { get; private set; }

    // per sequence: cached positions, logit rows and their first row in _logits (last Forward), last sampled ids (host copy)
    private readonly int[] _lengths, _logitRows, _logitStart, _lastSampledCount;
    private readonly int[][] _lastSampled;

    public DeviceSession(Accelerator accelerator, LaunchShape shape, KernelSet<TW> kernels, DeviceWeights<TW> weights, int sequences, int capacity, int maxRows,
        int maxLogitRows, bool tensorCores = false)
    {
        _shape = shape;
        _tensorCores = tensorCores;
        var cfg = weights.Config;
        if (cfg.HeadSize > FlashAttentionKernel.MaxHeadSize)
            throw new ModelConfigException($"head size {cfg.HeadSize} exceeds the attention kernel's {FlashAttentionKernel.MaxHeadSize}");
        if (sequences < 1) throw new ArgumentOutOfRangeException(nameof(sequences), sequences, "at least one sequence");
        _accelerator = accelerator;
        _kernels = kernels;
        _w = weights;
        Sequences = sequences;
        Capacity = capacity;
        _maxRows = maxRows;
        _maxLogitRows = maxLogitRows;
        _lengths = new int[sequences];
        _logitRows = new int[sequences];
        _logitStart = new int[sequences];
        _lastSampledCount = new int[sequences];
        _lastSampled = new int[sequences][];
        for (int s = 0; s < sequences; s++) _lastSampled[s] = new int[maxLogitRows];
        long c = cfg.EmbeddingSize, v = cfg.VocabSize;
        try
        {
            _stream = accelerator.CreateStream();
            _cache = Floats(sequences * cfg.LayerCount * capacity * 3 * c);
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

    public int LengthOf(int sequence) => _lengths[sequence];
    public int LogitRowsOf(int sequence) => _logitRows[sequence];

    public void Reset(int sequence)
    {
        _lengths[sequence] = 0;
        _logitRows[sequence] = 0;
        _lastSampledCount[sequence] = 0;
    }

    /// <summary>
    /// Feeds each sequence its ids (concatenated in feed order) at its positions Length.., appends their K/V to its
    /// cache, computes logits of its last LogitRows rows.
    /// </summary>
    public void Forward(ReadOnlySpan<int> ids, ReadOnlySpan<SequenceFeed> feeds)
    {
        var cfg = _w.Config;
        SequenceFeed.Validate(feeds, ids.Length, _maxRows, _maxLogitRows, _lengths, Capacity, _w.UnconditionalRows);
        foreach (int id in ids)
            if ((uint)id >= (uint)cfg.VocabSize) throw new ArgumentOutOfRangeException(nameof(ids), id, $"id {id} is outside the vocabulary [0, {cfg.VocabSize})");

        int c = cfg.EmbeddingSize, rows = ids.Length;
        Span<int> rowStart = feeds.Length <= 64 ? stackalloc int[feeds.Length] : new int[feeds.Length];
        for (int f = 0, at = 0; f < feeds.Length; at += feeds[f].Rows, f++)
        {
            var feed = feeds[f];
            rowStart[f] = at;
            var fedIds = ids.Slice(at, feed.Rows);
            var source = _ids.SubView(at, feed.Rows);
            if (feed.Rows == _lastSampledCount[feed.Sequence] && fedIds.SequenceEqual(_lastSampled[feed.Sequence].AsSpan(0, feed.Rows)))
                source = _sampled.SubView(_logitStart[feed.Sequence], feed.Rows);
            else
            {
                source.CopyFromCPU(_stream, fedIds);
                IdUploads++;
            }
            Launches++;
            _kernels.Embed(_stream, new KernelConfig(feed.Rows, _shape.GroupSize), source, _w.TokenEmbedding, _w.PositionEmbedding, _w.UnconditionalEmbedding,
                _x.SubView((long)at * c), new EmbeddingArgs { Rows = feed.Rows, Width = c, StartPosition = _lengths[feed.Sequence], UnconditionalRows = feed.UnconditionalRows });
        }
        Array.Clear(_lastSampledCount); // the next Sample overwrites _sampled

        long layerSize = (long)Capacity * 3 * c, sequenceSize = cfg.LayerCount * layerSize;
        for (int layer = 0; layer < cfg.LayerCount; layer++)
        {
            var l = _w.Layers[layer];
            LayerNorm(_x, rows, l.Ln1Weight, l.Ln1Bias, _normed);
            for (int f = 0; f < feeds.Length; f++)
            {
                var feed = feeds[f];
                int start = _lengths[feed.Sequence];
                var cache = _cache.SubView(feed.Sequence * sequenceSize + layer * layerSize, layerSize);
                // one GEMM for Q, K and V, its rows landing in the cache at the block's positions (3C apart)
                MatMul(Rows(_normed, rowStart[f], feed.Rows, c), feed.Rows, c, l.QueryKeyValue, 3 * c, l.QueryKeyValueBias,
                    cache.SubView((long)start * 3 * c, (long)feed.Rows * 3 * c), 3 * c, accumulate: false, gelu: false);
                var attention = new AttentionArgs
                {
                    Rows = feed.Rows, Heads = cfg.HeadCount, HeadSize = cfg.HeadSize, Width = c, InputStride = 3 * c, Start = start,
                    MaskKind = (int)feed.Mask.Kind, Prefix = feed.Mask.PrefixLength, Block = feed.Mask.BlockSize, Scale = 1f / MathF.Sqrt(cfg.HeadSize),
                };
                Attend(cache.SubView((long)start * 3 * c), cache.SubView(c), cache.SubView(2 * c), Rows(_attended, rowStart[f], feed.Rows, c), attention);
            }
            for (int f = 0; f < feeds.Length; f++)
                MatMul(Rows(_attended, rowStart[f], feeds[f].Rows, c), feeds[f].Rows, c, l.Proj, c, l.ProjBias, Rows(_x, rowStart[f], feeds[f].Rows, c), c, accumulate: true, gelu: false);
            LayerNorm(_x, rows, l.Ln2Weight, l.Ln2Bias, _normed);
            for (int f = 0; f < feeds.Length; f++)
            {
                int at = rowStart[f], n = feeds[f].Rows;
                MatMul(Rows(_normed, at, n, c), n, c, l.Fc, 4 * c, l.FcBias, Rows(_hidden, at, n, 4 * c), 4 * c, accumulate: false, gelu: true);
                MatMul(Rows(_hidden, at, n, 4 * c), n, 4 * c, l.Out, c, l.OutBias, Rows(_x, at, n, c), c, accumulate: true, gelu: false);
            }
        }
        Array.Clear(_logitRows);
        for (int f = 0, logitAt = 0; f < feeds.Length; logitAt += feeds[f].LogitRows, f++)
        {
            var feed = feeds[f];
            var last = Rows(_x, rowStart[f] + feed.Rows - feed.LogitRows, feed.LogitRows, c);
            var normed = Rows(_normed, logitAt, feed.LogitRows, c);
            LayerNorm(last, feed.LogitRows, _w.LnFinalWeight, _w.LnFinalBias, normed);
            Gemm(normed, new MatMulArgs { M = feed.LogitRows, N = cfg.VocabSize, K = c, Lda = c, Ldc = cfg.VocabSize }, _w.Head, _w.NoBias,
                Rows(_logits, logitAt, feed.LogitRows, cfg.VocabSize));
            _lengths[feed.Sequence] += feed.Rows;
            _logitRows[feed.Sequence] = feed.LogitRows;
            _logitStart[feed.Sequence] = logitAt;
        }
    }

    /// <summary>Rows [first, first + count) of a row-major matrix of <paramref name="width"/> columns.</summary>
    private static ArrayView<T> Rows<T>(ArrayView<T> matrix, int first, int count, int width) where T : unmanaged
        => matrix.SubView((long)first * width, (long)count * width);

    /// <summary>
    /// A cached step (no mask, at most 16 rows) splits the cache over key chunks (DecodeAttentionKernel: partial +
    /// combine); the prefill and anything masked take the flash kernel.
    /// </summary>
    private void Attend(ArrayView<float> queries, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> output, AttentionArgs args)
    {
        if (args.MaskKind == MaskMath.None && args.Rows <= DecodeAttentionKernel.MaxRows)
        {
            int group = Math.Min(_shape.GroupSize, 128);
            _kernels.DecodeAttention(_stream, DecodeAttentionKernel.PartialGrid(args, group), queries, keys, values, _partialOutput, _partialStats, args);
            _kernels.DecodeAttentionCombine(_stream, DecodeAttentionKernel.CombineGrid(args, _shape.GroupSize), _partialOutput, _partialStats, output, args);
            Launches += 2;
            return;
        }
        int q = _shape.AttentionQueryRows;
        _kernels.Attention(_stream, new KernelConfig(args.Heads * ((args.Rows + q - 1) / q), q * 32), queries, keys, values, output, args);
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

    /// <summary>Classifier-free guidance: <paramref name="sequence"/>'s logits blended with <paramref name="unconditional"/>'s, in place.</summary>
    public void Guide(int sequence, int unconditional, float scale)
    {
        int rows = _logitRows[sequence], v = _w.Config.VocabSize;
        if (rows == 0 || _logitRows[unconditional] != rows)
            throw new InvalidOperationException($"guidance needs logits of both sequences from the last forward: {rows} rows for sequence {sequence}, {_logitRows[unconditional]} for {unconditional}");
        int count = rows * v;
        Launches++;
        _kernels.Guide(_stream, new KernelConfig((count + _shape.GroupSize - 1) / _shape.GroupSize, _shape.GroupSize),
            Rows(_logits, _logitStart[sequence], rows, v), Rows(_logits, _logitStart[unconditional], rows, v), scale);
    }

    /// <summary>Samples every logits row of <paramref name="sequence"/> on the device and copies the ids back (the step's read-back).</summary>
    public void Sample(int sequence, SamplingArgs args, Span<int> destination)
    {
        int rows = _logitRows[sequence], first = _logitStart[sequence];
        if (destination.Length != rows)
            throw new ArgumentException($"destination holds {destination.Length} tokens, the last forward produced {rows} logit rows for sequence {sequence}", nameof(destination));
        int v = _w.Config.VocabSize;
        args.Vocab = v;
        Launches++;
        _kernels.Sample(_stream, new KernelConfig(rows, _shape.GroupSize), Rows(_logits, first, rows, v), Rows(_scaled, first, rows, v), Rows(_weights, first, rows, v),
            _sampled.SubView(first, rows), args);
        _sampled.SubView(first, rows).CopyToCPU(_stream, destination);
        _stream.Synchronize();
        destination.CopyTo(_lastSampled[sequence]);
        _lastSampledCount[sequence] = rows;
    }

    public void CopyLogits(int sequence, Span<float> destination)
    {
        int v = _w.Config.VocabSize;
        long count = (long)_logitRows[sequence] * v;
        if (destination.Length != count) throw new ArgumentException($"destination holds {destination.Length} floats, logits of sequence {sequence} are [{_logitRows[sequence]}, {v}]");
        Rows(_logits, _logitStart[sequence], _logitRows[sequence], v).CopyToCPU(_stream, destination);
        _stream.Synchronize();
    }

    public void Dispose()
    {
        _stream?.Dispose();
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }
}
