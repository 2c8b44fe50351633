using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Attention;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Fused;
using NbpEngine.Kernels.Graphs;
using NbpEngine.Kernels.Ops;
using NbpEngine.Kernels.Profiling;
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
/// middle-bos block). The step GEMM takes every step block of a call (up to 8, 16 rows each) in one launch, so a
/// batch's blocks share each weight read; attention, the final norm and sampling run per sequence. A step's rows have
/// no LayerNorm launches inside the layers: LN1 and LN2 are folded into the Q/K/V and fc step GEMMs
/// (<see cref="StepNorm"/>); prefill rows keep the LayerNorm kernel.
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
    private LaunchProfile? _profile;
    private IStepCapture? _capture;
    private bool _capturing; // a step's launches are being recorded: no host copy or synchronisation until Submit

    /// <summary>Matmuls with at least this many rows (prefill) take the tensor-core kernel when enabled.</summary>
    public const int TensorCoreMinRows = 64;
    private readonly ArrayView<float> _cache;                     // [sequence, layer, capacity, 3C]: Q | K | V
    private readonly ArrayView<float> _x, _normed, _attended;     // [maxRows, C]
    private readonly ArrayView<float> _hidden;                    // [maxRows, 4C]
    private readonly ArrayView<float> _qkv;                       // [step rows of all sequences, 3C]: batched blocks' Q|K|V before the cache
    private readonly ArrayView<float> _logits, _scaled, _weights; // [maxLogitRows, V]
    private readonly ArrayView<float> _samplerSums; // [maxLogitRows, SamplerViews.SumsPerRow]
    private readonly ArrayView<int> _samplerState; // [maxLogitRows, SamplerViews.StatePerRow]
    private readonly ArrayView<int> _ids;                         // [maxRows]
    private readonly ArrayView<int> _sampled;                     // [maxLogitRows]
    private readonly ArrayView<float> _partialOutput, _partialStats; // decode attention: [heads, chunks, rows, hd], [heads, chunks, rows, 2]
    private readonly long _partialOutputSlot, _partialStatsSlot;  // floats of one block's partials
    private readonly ArrayView<int> _layerCounters;               // a fused layer launch's ticket and phase counters, zero between launches

    public int Sequences { get; }
    public int Capacity { get; }
    public long DeviceBytes { get; private set; }
    /// <summary>
    /// Launches the host made so far: a one-sequence step costs one launch per layer + 4 (<see cref="FusedLayers"/>;
    /// 6 per layer + 4 without; S sequences: one per layer + 3S + 1), or with step capture on (<see cref="TryEnableCudaGraphs"/>) one graph launch, its
    /// kernels counted in <see cref="CapturedLaunches"/>.
    /// </summary>
    public long Launches { get; private set; }
    /// <summary>
    /// A step (every feed a block of at most 16 rows with no mask, at most 8 of them: one sequence's, a batch's, a guided
    /// step's two streams) runs each layer as one launch (<see cref="LayerStepKernel"/>: the same kernels' code as
    /// phases, the same bits) instead of 6 (4 + 2 per sequence for several). On by default; off shows each kernel on its
    /// own in a profile (<see cref="StartProfiling"/>). Prefills always take the separate kernels.
    /// </summary>
    public bool FusedLayers { get; set; } = true;
    /// <summary>
    /// A measured launch rule for the step GEMMs (<see cref="Ops.StepGemmRule"/>: K splits and group sizes from the
    /// launch-shape sweep) in place of <see cref="StepMatMulKernel.Launch"/>'s; null (the default) for none. While one is
    /// set every step runs the separate kernels: the fused layer's phases split K their own way, and one session must
    /// give a row the same bits whichever path a step takes.
    /// </summary>
    public StepGemmRule? StepGemmRule { get; set; }
    /// <summary>
    /// The step GEMMs (the head's included) on tensor cores (<see cref="StepMmaKernel"/>: each GEMM's rows rounded to fp16
    /// by <see cref="HalfRowsKernel"/>, which also applies the LayerNorm before q/k/v and fc) instead of
    /// <see cref="StepMatMulKernel"/>'s FMAs; off by default until a GPU has timed it (nbp-gpu-check's K600 table, step anatomy and step-GEMM sweep).
    /// The bits change (A in fp16: the parity suite bounds it against fp32 on the rounded rows); a row still gets the same
    /// bits batched or alone (the K split comes from each GEMM's shape). While on, every step runs the separate kernels
    /// (the fused layer's phases are the FMA kernel's). Needs the model's width to be a multiple of 8; otherwise the FMA
    /// kernel runs as before.
    /// </summary>
    public bool TensorCoreSteps
    {
        get => _tensorCoreSteps;
        set
        {
            // the fp16 rows of one launch (at most 128 of K = 4C), allocated the first time the mode is asked for
            if (value && _halfRows.Length == 0)
                _halfRows = Track(_accelerator.Allocate1D<Bits128>(Math.Min(_maxRows, StepMmaKernel.MaxBatchRows) * 4L * _w.Config.EmbeddingSize / 8)).View;
            _tensorCoreSteps = value;
        }
    }
    private bool _tensorCoreSteps;
    private ArrayView<Bits128> _halfRows;
    /// <summary>
    /// Whether a step's layers may run as one launch each: <see cref="FusedLayers"/>, with neither a
    /// <see cref="StepGemmRule"/> nor <see cref="TensorCoreSteps"/> (the fused layer's phases are the FMA kernel's,
    /// launched its own way), and the model's norms folded into its step GEMMs.
    /// </summary>
    public bool StepsRunFused => FusedLayers && StepGemmRule is null && !TensorCoreSteps && _w.NormsFolded;
    /// <summary>Kernels recorded into captured steps instead of launched.</summary>
    public long CapturedLaunches { get; private set; }
    /// <summary>Steps submitted as one launch each (captured: no id upload, not profiled).</summary>
    public long CapturedSteps => _capture?.Submitted ?? 0;
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
            _cache = Floats(sequences * cfg.LayerCount * LayerCacheFloats);
            _x = Floats(maxRows * c);
            _normed = Floats(maxRows * c);
            _attended = Floats(maxRows * c);
            _hidden = Floats(maxRows * 4 * c);
            _qkv = sequences > 1 ? Floats(Math.Min(maxRows, (long)sequences * StepMatMulKernel.MaxRows) * 3 * c) : default;
            _logits = Floats(maxLogitRows * v);
            _scaled = Floats(maxLogitRows * v);
            _weights = Floats(maxLogitRows * v);
            _samplerSums = Floats(maxLogitRows * SamplerViews.SumsPerRow);
            _samplerState = Track(accelerator.Allocate1D<int>(maxLogitRows * SamplerViews.StatePerRow)).View;
            _ids = Track(accelerator.Allocate1D<int>(maxRows)).View;
            _sampled = Track(accelerator.Allocate1D<int>(maxLogitRows)).View;
            // one slot of split-key partials per block a fused step attends to at once (the separate kernels use the first)
            int decodeRows = Math.Min(maxRows, DecodeAttentionKernel.MaxRows), chunks = DecodeAttentionKernel.Chunks(capacity);
            int slots = Math.Min(sequences, StepFeeds.MaxFeeds);
            _partialOutputSlot = (long)cfg.HeadCount * chunks * decodeRows * cfg.HeadSize;
            _partialStatsSlot = (long)cfg.HeadCount * chunks * decodeRows * 2;
            _partialOutput = Floats(slots * _partialOutputSlot);
            _partialStats = Floats(slots * _partialStatsSlot);
            var counters = Track(accelerator.Allocate1D<int>(LayerStepKernel.CounterCount));
            counters.MemSetToZero(_stream); // on the session's stream: the first fused launch comes after it
            _layerCounters = counters.View;
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

    /// <summary>
    /// From the next step on, captures each step (every sequence fed its own last sample, not profiled) from its
    /// embedding to the first sequence's sampler as a CUDA graph and launches that once (<see cref="CudaStepGraph"/>).
    /// False, and nothing changes, where the session does not run on CUDA or the driver has no graph update (CUDA 12+).
    /// </summary>
    public bool TryEnableCudaGraphs()
    {
        FinishCapture();
        var graph = CudaStepGraph.TryCreate(_stream);
        if (graph is null) return false;
        UseStepCapture(graph);
        return true;
    }

    /// <summary>Steps are recorded by <paramref name="capture"/> (the tests pass one that records nothing, to check the session's side).</summary>
    internal void UseStepCapture(IStepCapture capture)
    {
        FinishCapture();
        _capture?.Dispose();
        _capture = capture;
    }

    /// <summary>Submits a step whose capture is still open (its forward was not followed by a Sample).</summary>
    private void FinishCapture()
    {
        if (!_capturing) return;
        _capturing = false;
        _capture!.Submit();
        Launches++;
    }

    public void Reset(int sequence)
    {
        _lengths[sequence] = 0;
        _logitRows[sequence] = 0;
        _lastSampledCount[sequence] = 0;
    }

    /// <summary>
    /// Feeds each sequence its ids (concatenated in feed order) at its positions Length.., appends their K/V to its
    /// cache, computes logits of its last LogitRows rows. Feeds of at most one block (16 rows: the steps) sit first in
    /// the activations and go through each weight matrix together (<see cref="StepGemm"/>, the kernel a block gets
    /// alone); larger feeds (prefills) each take the GEMM their size picks, as alone.
    /// </summary>
    public void Forward(ReadOnlySpan<int> ids, ReadOnlySpan<SequenceFeed> feeds)
    {
        var cfg = _w.Config;
        SequenceFeed.Validate(feeds, ids.Length, _maxRows, _maxLogitRows, _lengths, Capacity, _w.UnconditionalRows);
        foreach (int id in ids)
            if ((uint)id >= (uint)cfg.VocabSize) throw new ArgumentOutOfRangeException(nameof(ids), id, $"id {id} is outside the vocabulary [0, {cfg.VocabSize})");

        int c = cfg.EmbeddingSize, v = cfg.VocabSize;
        FinishCapture();
        _profile?.Begin();
        long uploadsBefore = IdUploads;
        Span<int> rowStart = feeds.Length <= 64 ? stackalloc int[feeds.Length] : new int[feeds.Length];
        Span<int> logitStart = feeds.Length <= 64 ? stackalloc int[feeds.Length] : new int[feeds.Length];
        int stepRows = SequenceFeed.Arrange(feeds, logits: false, IsStep, rowStart, out int rows);
        int stepLogitRows = SequenceFeed.Arrange(feeds, logits: true, IsStep, logitStart, out _);
        int stepFeeds = 0;
        foreach (var feed in feeds) stepFeeds += IsStep(feed.Rows) ? 1 : 0;

        // the ids first: a feed that is not its sequence's last sample is uploaded (a host copy, so such a forward is not captured)
        Span<bool> ownSample = feeds.Length <= 64 ? stackalloc bool[feeds.Length] : new bool[feeds.Length];
        for (int f = 0, taken = 0; f < feeds.Length; taken += feeds[f].Rows, f++)
        {
            var feed = feeds[f];
            var fedIds = ids.Slice(taken, feed.Rows);
            ownSample[f] = feed.Rows == _lastSampledCount[feed.Sequence] && fedIds.SequenceEqual(_lastSampled[feed.Sequence].AsSpan(0, feed.Rows));
            if (ownSample[f]) continue;
            _ids.SubView(rowStart[f], feed.Rows).CopyFromCPU(_stream, fedIds);
            IdUploads++;
            _profile?.Mark("id upload", "memcpy");
        }
        if (_capture is not null && _profile is null && IdUploads == uploadsBefore)
        {
            _capture.Begin();
            _capturing = true;
        }
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            var source = ownSample[f] ? _sampled.SubView(_logitStart[feed.Sequence], feed.Rows) : _ids.SubView(rowStart[f], feed.Rows);
            _kernels.Embed(_stream, new KernelConfig(feed.Rows, _shape.GroupSize), source, _w.TokenEmbedding, _w.PositionEmbedding, _w.UnconditionalEmbedding,
                Rows(_x, rowStart[f], feed.Rows, c), new EmbeddingArgs { Rows = feed.Rows, Width = c, StartPosition = _lengths[feed.Sequence], UnconditionalRows = feed.UnconditionalRows });
            Launched("embedding", "embedding");
        }
        Array.Clear(_lastSampledCount); // the next Sample overwrites _sampled

        // the step rows [0, stepRows) skip the LayerNorm launches: the step GEMM after each norm applies it (StepNorm)
        bool fold = _w.NormsFolded;
        int normedFrom = fold ? stepRows : 0;
        var fusedFeeds = StepsRunFused ? FusedFeeds(feeds, rowStart) : default;
        for (int layer = 0; layer < cfg.LayerCount; layer++)
        {
            var l = _w.Layers[layer];
            if (fusedFeeds.Count > 0)
            {
                FusedLayer(l, fusedFeeds, layer);
                continue;
            }
            var qkv = fold ? new FoldedNorm(_x, l.QueryKeyValueNorm, l.QueryKeyValueFoldedBias, l.Ln1Weight, l.Ln1Bias, l.QueryKeyValueBias) : FoldedNorm.None;
            LayerNorm(_x, normedFrom, rows, l.Ln1Weight, l.Ln1Bias, _normed);
            // Q, K and V as one GEMM whose rows land in the cache at the block's positions (3C apart); several step
            // blocks go through it together into _qkv, then each block's rows are copied to its cache
            if (stepFeeds > 1)
                StepGemm("q/k/v gemm", _normed, stepRows, c, l.QueryKeyValue, 3 * c, l.QueryKeyValueBias, _qkv, 3 * c, accumulate: false, gelu: false, feeds, rowStart, qkv);
            for (int f = 0; f < feeds.Length; f++)
            {
                var feed = feeds[f];
                int start = _lengths[feed.Sequence];
                var cache = _cache.SubView(CacheOffset(feed.Sequence, layer), LayerCacheFloats);
                var block = cache.SubView((long)start * 3 * c, (long)feed.Rows * 3 * c);
                if (stepFeeds > 1 && IsStep(feed.Rows))
                {
                    Rows(_qkv, rowStart[f], feed.Rows, 3 * c).CopyTo(_stream, block);
                    _profile?.Mark("q/k/v to cache", "memcpy");
                }
                else
                {
                    var own = qkv.On && IsStep(feed.Rows) ? qkv : FoldedNorm.Unnormed(_normed, _w.NoNorm, l.QueryKeyValueBias);
                    MatMul("q/k/v gemm", Rows(own.Input, rowStart[f], feed.Rows, c), feed.Rows, c, l.QueryKeyValue, 3 * c, own.Bias, block, 3 * c, accumulate: false, gelu: false, own);
                }
                var attention = new AttentionArgs
                {
                    Rows = feed.Rows, Heads = cfg.HeadCount, HeadSize = cfg.HeadSize, Width = c, InputStride = 3 * c, Start = start,
                    MaskKind = (int)feed.Mask.Kind, Prefix = feed.Mask.PrefixLength, Block = feed.Mask.BlockSize, Scale = 1f / MathF.Sqrt(cfg.HeadSize),
                };
                Attend(cache.SubView((long)start * 3 * c), cache.SubView(c), cache.SubView(2 * c), Rows(_attended, rowStart[f], feed.Rows, c), attention);
            }
            Linear("proj gemm", _attended, c, l.Proj, c, l.ProjBias, _x, accumulate: true, gelu: false, feeds, rowStart, stepRows);
            LayerNorm(_x, normedFrom, rows, l.Ln2Weight, l.Ln2Bias, _normed);
            Linear("fc gemm", _normed, c, l.Fc, 4 * c, l.FcBias, _hidden, accumulate: false, gelu: true, feeds, rowStart, stepRows,
                fold ? new FoldedNorm(_x, l.FcNorm, l.FcFoldedBias, l.Ln2Weight, l.Ln2Bias, l.FcBias) : FoldedNorm.None);
            Linear("out gemm", _hidden, 4 * c, l.Out, c, l.OutBias, _x, accumulate: true, gelu: false, feeds, rowStart, stepRows);
        }

        // the final norm and the vocabulary head for each sequence's last LogitRows rows, gathered as Arrange placed them
        // (a guiding feed's normed rows are blended into its guided sequence's, SequenceFeed.GuidesSequence, and go no further)
        Array.Clear(_logitRows);
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            LayerNorm(Rows(_x, rowStart[f] + feed.Rows - feed.LogitRows, feed.LogitRows, c), 0, feed.LogitRows, _w.LnFinalWeight, _w.LnFinalBias,
                Rows(_normed, logitStart[f], feed.LogitRows, c));
            _lengths[feed.Sequence] += feed.Rows;
            _logitRows[feed.Sequence] = feed.Guides ? 0 : feed.LogitRows;
            _logitStart[feed.Sequence] = logitStart[f];
        }
        for (int f = 0; f < feeds.Length; f++)
            if (feeds[f].Guides)
                Guide(Rows(_normed, logitStart[SequenceFeed.FeedOf(feeds, feeds[f].GuidesSequence)], feeds[f].LogitRows, c),
                    Rows(_normed, logitStart[f], feeds[f].LogitRows, c), feeds[f].GuidanceScale);
        StepGemm("head gemm", _normed, stepLogitRows, c, _w.Head, v, _w.NoBias, _logits, v, accumulate: false, gelu: false, feeds, logitStart, logits: true, hasBias: false);
        for (int f = 0; f < feeds.Length; f++)
            if (!IsStep(feeds[f].LogitRows) && !feeds[f].Guides)
                Gemm("head gemm", Rows(_normed, logitStart[f], feeds[f].LogitRows, c), new MatMulArgs { M = feeds[f].LogitRows, N = v, K = c, Lda = c, Ldc = v }, _w.Head, _w.NoBias,
                    Rows(_logits, logitStart[f], feeds[f].LogitRows, v));
    }

    /// <summary>Floats of one sequence's cache of one layer: [Capacity, 3C] of Q|K|V rows.</summary>
    private long LayerCacheFloats => (long)Capacity * 3 * _w.Config.EmbeddingSize;

    /// <summary>Where <paramref name="sequence"/>'s cache of <paramref name="layer"/> starts in <see cref="_cache"/> ([sequence, layer, capacity, 3C]).</summary>
    private long CacheOffset(int sequence, int layer) => ((long)sequence * _w.Config.LayerCount + layer) * LayerCacheFloats;

    /// <summary>
    /// The blocks of a step that runs fused (<see cref="FusedLayers"/>): every feed a block of at most 16 rows with no
    /// mask, at most <see cref="StepFeeds.MaxFeeds"/> of them; none (Count 0) when the call is anything else. Each
    /// feed's cache offset is that of layer 0 (<see cref="FusedLayer"/> adds the layer's).
    /// </summary>
    private StepFeeds FusedFeeds(ReadOnlySpan<SequenceFeed> feeds, ReadOnlySpan<int> rowStart)
    {
        Span<int> rows = stackalloc int[Math.Min(feeds.Length, StepFeeds.MaxFeeds + 1)];
        for (int f = 0; f < rows.Length; f++)
        {
            if ((int)feeds[f].Mask.Kind != MaskMath.None) return default;
            rows[f] = feeds[f].Rows;
        }
        if (!LayerStepKernel.Fits(rows, _w.Config.EmbeddingSize, _w.Config.HeadSize)) return default;
        var table = new StepFeeds();
        for (int f = 0; f < feeds.Length; f++)
        {
            if (rowStart[f] != table.TotalRows) return default; // step blocks lie first and back to back (SequenceFeed.Arrange)
            table.Add(new StepFeed { Rows = feeds[f].Rows, RowStart = rowStart[f], Start = _lengths[feeds[f].Sequence], Cache = CacheOffset(feeds[f].Sequence, 0) });
        }
        return table;
    }

    /// <summary>One layer of a step's blocks (<see cref="FusedFeeds"/>) as one launch: rows [0, TotalRows) of the activations.</summary>
    private void FusedLayer(DeviceLayer<TW> l, StepFeeds feeds, int layer)
    {
        var cfg = _w.Config;
        int c = cfg.EmbeddingSize, rows = feeds.TotalRows, group = LayerStepKernel.GroupSize(c, rows, _shape.GroupSize, _accelerator.NumMultiprocessors);
        feeds = feeds.AtLayerOffset(CacheOffset(0, layer));
        var gemm = new MatMulArgs { M = rows, HasBias = 1 };
        var args = new LayerStepArgs<TW>
        {
            X = Rows(_x, 0, rows, c), Cache = _cache, QueryKeyValueRows = feeds.Count > 1 ? Rows(_qkv, 0, rows, 3 * c) : _attended,
            Attended = Rows(_attended, 0, rows, c), Hidden = Rows(_hidden, 0, rows, 4 * c),
            PartialOutput = _partialOutput, PartialStats = _partialStats, PartialOutputStride = _partialOutputSlot, PartialStatsStride = _partialStatsSlot,
            Counters = _layerCounters,
            QueryKeyValue = l.QueryKeyValue, Projection = l.Proj, Fc = l.Fc, Out = l.Out,
            QueryKeyValueBias = l.QueryKeyValueFoldedBias, ProjectionBias = l.ProjBias, FcBias = l.FcFoldedBias, OutBias = l.OutBias,
            QueryKeyValueNorm = l.QueryKeyValueNorm, FcNorm = l.FcNorm, NoNorm = _w.NoNorm,
            QueryKeyValueArgs = gemm with { N = 3 * c, K = c, Lda = c, Ldc = 3 * c },
            ProjectionArgs = gemm with { N = c, K = c, Lda = c, Ldc = c, Accumulate = 1 },
            FcArgs = gemm with { N = 4 * c, K = c, Lda = c, Ldc = 4 * c, Gelu = 1 },
            OutArgs = gemm with { N = c, K = 4 * c, Lda = 4 * c, Ldc = c, Accumulate = 1 },
            Attention = new AttentionArgs { Heads = cfg.HeadCount, HeadSize = cfg.HeadSize, Width = c, InputStride = 3 * c, MaskKind = MaskMath.None, Scale = 1f / MathF.Sqrt(cfg.HeadSize) },
            Feeds = feeds,
            Phases = LayerStepKernel.Plan(c, cfg.HeadCount, feeds, group),
        };
        _kernels.Layer(_stream, new KernelConfig(args.Phases.Total, group), args);
        Launched("layer", "fused");
    }

    /// <summary>
    /// A LayerNorm the step GEMM applies to the raw rows <see cref="Input"/> (the residual stream) instead of reading
    /// the LayerNorm kernel's output; <see cref="Bias"/> is the GEMM's bias with the norm's β folded in. The tensor-core
    /// step GEMM normalises the rows as it rounds them instead (<see cref="HalfRowsKernel"/>): the norm's
    /// <see cref="Gamma"/> and <see cref="Beta"/>, and the GEMM's own <see cref="UnfoldedBias"/>.
    /// </summary>
    private readonly record struct FoldedNorm(ArrayView<float> Input, StepNorm Norm, ArrayView<float> Bias, ArrayView<float> Gamma, ArrayView<float> Beta,
        ArrayView<float> UnfoldedBias)
    {
        public static FoldedNorm None => default;
        /// <summary>No norm: rows <paramref name="input"/> as they are, with <paramref name="bias"/>.</summary>
        public static FoldedNorm Unnormed(ArrayView<float> input, StepNorm off, ArrayView<float> bias) => new(input, off, bias, default, default, bias);
        public bool On => Norm.Enabled != 0;
    }

    /// <summary>A feed of at most one block: what the step GEMM takes alone, and what goes through it with the batch's other blocks.</summary>
    private static bool IsStep(int rows) => rows <= StepMatMulKernel.MaxRows;

    /// <summary>
    /// c = a·Wᵀ (+ bias, GELU, residual) for every feed's rows of a call: the step rows [0, stepRows) together
    /// (<see cref="StepGemm"/>), each larger feed with the GEMM its size picks.
    /// </summary>
    private void Linear(string what, ArrayView<float> a, int k, TW w, int n, ArrayView<float> bias, ArrayView<float> c, bool accumulate, bool gelu,
        ReadOnlySpan<SequenceFeed> feeds, ReadOnlySpan<int> rowStart, int stepRows, FoldedNorm norm = default)
    {
        StepGemm(what, a, stepRows, k, w, n, bias, c, n, accumulate, gelu, feeds, rowStart, norm);
        for (int f = 0; f < feeds.Length; f++)
            if (!IsStep(feeds[f].Rows))
                MatMul(what, Rows(a, rowStart[f], feeds[f].Rows, k), feeds[f].Rows, k, w, n, bias, Rows(c, rowStart[f], feeds[f].Rows, n), n, accumulate, gelu);
    }

    /// <summary>
    /// The first <paramref name="rows"/> rows (the step blocks of a call) through the step GEMM, at most 128 rows a
    /// launch: a row's sums do not depend on which launch or row group it is in, so every block gets the bits it gets
    /// alone. Where the step GEMM cannot take the shape (K not a multiple of 8), each block alone through
    /// <see cref="Gemm"/>. With <paramref name="norm"/> on, the rows are its input, normalised in the kernel.
    /// </summary>
    private void StepGemm(string what, ArrayView<float> a, int rows, int k, TW w, int n, ArrayView<float> bias, ArrayView<float> c, int ldc, bool accumulate, bool gelu,
        ReadOnlySpan<SequenceFeed> feeds, ReadOnlySpan<int> start, FoldedNorm norm = default, bool logits = false, bool hasBias = true)
    {
        if (rows == 0) return;
        var args = new MatMulArgs { N = n, K = k, Lda = k, Ldc = ldc, Accumulate = accumulate ? 1 : 0, Gelu = gelu ? 1 : 0, HasBias = hasBias ? 1 : 0 };
        var stepNorm = norm.On ? norm.Norm : _w.NoNorm;
        if (norm.On) (a, bias) = (norm.Input, norm.Bias);
        if (!StepMatMulKernel.Fits(1, k, k))
        {
            if (norm.On) throw new InvalidOperationException($"a LayerNorm is folded only into the step GEMM, which cannot take K = {k}");
            for (int f = 0; f < feeds.Length; f++)
            {
                int m = logits ? feeds[f].LogitRows : feeds[f].Rows;
                if (IsStep(m) && !(logits && feeds[f].Guides)) Gemm(what, Rows(a, start[f], m, k), args with { M = m }, w, bias, Rows(c, start[f], m, ldc));
            }
            return;
        }
        if (TensorCoreSteps && StepMmaKernel.Fits(1, k))
        {
            int chunk = StepMmaKernel.MaxRows(StepMmaKernel.Splits(n, k, _accelerator.NumMultiprocessors));
            for (int r = 0; r < rows; r += chunk)
            {
                int m = Math.Min(chunk, rows - r);
                StepMma(what, Rows(a, r, m, k), args with { M = m }, w, bias, Rows(c, r, m, ldc), norm);
            }
            return;
        }
        int most = StepGemmRule?.MaxRows(n, k) ?? StepMatMulKernel.MaxBatchRows;
        for (int r = 0; r < rows; r += most)
        {
            int m = Math.Min(most, rows - r);
            var (config, splits) = StepLaunch(n, k, m);
            _kernels.StepMatMul(_stream, config, Rows(a, r, m, k).Cast<Float4>(), w, bias, Rows(c, r, m, ldc), args with { M = m, KSplits = splits }, stepNorm);
            Launched(what, "step");
        }
    }

    /// <summary>The step GEMM's launch and K split for <paramref name="m"/> rows: <see cref="StepGemmRule"/>'s when one is set.</summary>
    private (KernelConfig Config, int Splits) StepLaunch(int n, int k, int m) => StepGemmRule is { } rule
        ? (rule.Launch(n, k, m, _shape.GroupSize, _accelerator.NumMultiprocessors), rule.Splits(n, k))
        : (StepMatMulKernel.Launch(n, m, _shape.GroupSize, _accelerator.NumMultiprocessors), 1);

    /// <summary>
    /// At most one launch's rows (<see cref="StepMmaKernel.MaxRows"/>) through the tensor-core step GEMM: rounded to fp16
    /// (normalised first when <paramref name="norm"/> is on: then <paramref name="a"/> is the raw rows and the GEMM takes
    /// its unfolded bias), then multiplied, K split as the GEMM's shape says.
    /// </summary>
    private void StepMma(string what, ArrayView<float> a, MatMulArgs args, TW w, ArrayView<float> bias, ArrayView<float> c, FoldedNorm norm)
    {
        int splits = StepMmaKernel.Splits(args.N, args.K, _accelerator.NumMultiprocessors);
        var halves = _halfRows.SubView(0, (long)args.M * args.K / 8);
        _kernels.HalfRows(_stream, HalfRowsKernel.Launch(args.M, _shape.GroupSize), a, norm.On ? norm.Gamma : bias, norm.On ? norm.Beta : bias, halves,
            new HalfRowsArgs { Rows = args.M, Width = args.K, Lda = args.Lda, Normalize = norm.On ? 1 : 0 });
        Launched(what, "half rows");
        _kernels.StepMma(_stream, StepMmaKernel.Launch(args.N, args.M, _shape.GroupSize, _accelerator.NumMultiprocessors, splits), halves, w, norm.On ? norm.UnfoldedBias : bias, c,
            args with { KSplits = splits });
        Launched(what, "step mma");
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
            Launched("attention", "split-key partial");
            _kernels.DecodeAttentionCombine(_stream, DecodeAttentionKernel.CombineGrid(args, _shape.GroupSize), _partialOutput, _partialStats, output, args);
            Launched("attention", "split-key combine");
            return;
        }
        int q = _shape.AttentionQueryRows;
        _kernels.Attention(_stream, new KernelConfig(args.Heads * ((args.Rows + q - 1) / q), q * 32), queries, keys, values, output, args);
        Launched("attention", "flash");
    }

    /// <summary>LayerNorm of rows [first, rows) of x into the same rows of y; nothing when that is empty (every row a folded step row).</summary>
    private void LayerNorm(ArrayView<float> x, int first, int rows, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y)
    {
        if (first >= rows) return;
        int c = _w.Config.EmbeddingSize;
        _kernels.LayerNorm(_stream, new KernelConfig(rows - first, _shape.GroupSize), Rows(x, first, rows - first, c), weight, bias, Rows(y, first, rows - first, c),
            new LayerNormArgs { Rows = rows - first, Width = c });
        Launched("layernorm", "layernorm");
    }

    private void MatMul(string what, ArrayView<float> a, int m, int k, TW w, int n, ArrayView<float> bias, ArrayView<float> c, int ldc, bool accumulate, bool gelu,
        FoldedNorm norm = default)
        => Gemm(what, a, new MatMulArgs { M = m, N = n, K = k, Lda = k, Ldc = ldc, Accumulate = accumulate ? 1 : 0, Gelu = gelu ? 1 : 0, HasBias = 1 }, w, bias, c, norm);

    /// <summary>
    /// The kernel for the shape: a step's few rows stream the weights (StepMatMulKernel), a prefill's many rows
    /// take tensor cores when enabled, anything else the tiled kernel.
    /// </summary>
    private void Gemm(string what, ArrayView<float> a, MatMulArgs args, TW w, ArrayView<float> bias, ArrayView<float> c, FoldedNorm norm = default)
    {
        bool step = IsStep(args.M) && StepMatMulKernel.Fits(args.M, args.K, args.Lda) && a.Length % 4 == 0;
        if (norm.On && !step) throw new InvalidOperationException($"a LayerNorm is folded only into the step GEMM, which cannot take {args.M} x {args.K} rows");
        if (step && TensorCoreSteps && StepMmaKernel.Fits(args.M, args.K))
            StepMma(what, a, args, w, bias, c, norm);
        else if (step)
        {
            // at most 16 rows (IsStep): one row group, which every K split fits
            var (config, splits) = StepLaunch(args.N, args.K, args.M);
            _kernels.StepMatMul(_stream, config, a.Cast<Float4>(), w, bias, c, args with { KSplits = splits }, norm.On ? norm.Norm : _w.NoNorm);
            Launched(what, "step");
        }
        else if (_tensorCores && args.M >= TensorCoreMinRows)
        {
            _kernels.TensorCoreMatMul(_stream, MmaTile.Launch(args.M, args.N, MmaTile.Warps(_shape.GroupSize)), a, TensorCoreMatMulKernel.Vectors(a), w, bias, c, args);
            Launched(what, "tensor cores");
        }
        else
        {
            _kernels.MatMul(_stream, MatMulKernel.Launch(args.M, args.N, _shape.GroupSize), a, w, bias, c, args);
            Launched(what, "tiled");
        }
    }

    /// <summary>Counts a launch and, when profiling, charges the device time since the previous marker to it.</summary>
    private void Launched(string what, string kernel)
    {
        if (_capturing)
        {
            CapturedLaunches++;
            return; // a captured step is never profiled
        }
        Launches++;
        _profile?.Mark(what, kernel);
    }

    /// <summary>
    /// Starts charging device time to each launch site (<see cref="LaunchProfile"/>) until <see cref="StopProfiling"/>;
    /// the accelerator's context must have profiling enabled (<see cref="IlgpuDevice.CreateContext"/> does).
    /// </summary>
    public LaunchProfile StartProfiling()
    {
        FinishCapture();
        StopProfiling();
        return _profile = new LaunchProfile(_stream);
    }

    /// <summary>Stops marking launches; the profile keeps what it measured until disposed.</summary>
    public void StopProfiling() => _profile = null;

    /// <summary>Classifier-free guidance's blend, in place on <paramref name="own"/> (the guided stream's final-normed rows).</summary>
    private void Guide(ArrayView<float> own, ArrayView<float> unconditional, float scale)
    {
        _kernels.Guide(_stream, new KernelConfig((int)((own.Length + _shape.GroupSize - 1) / _shape.GroupSize), _shape.GroupSize), own, unconditional, scale);
        Launched("guidance", "guidance");
    }

    /// <summary>Samples every logits row of <paramref name="sequence"/> on the device and copies the ids back (the step's read-back).</summary>
    public void Sample(int sequence, SamplingArgs args, Span<int> destination)
    {
        int rows = _logitRows[sequence], first = _logitStart[sequence];
        if (destination.Length != rows)
            throw new ArgumentException($"destination holds {destination.Length} tokens, the last forward produced {rows} logit rows for sequence {sequence}", nameof(destination));
        int v = _w.Config.VocabSize;
        args.Vocab = v;
        var views = new SamplerViews
        {
            Logits = Rows(_logits, first, rows, v), Scaled = Rows(_scaled, first, rows, v), Weights = Rows(_weights, first, rows, v),
            Sums = Rows(_samplerSums, first, rows, SamplerViews.SumsPerRow), State = _samplerState.SubView((long)first * SamplerViews.StatePerRow, (long)rows * SamplerViews.StatePerRow),
            Tokens = _sampled.SubView(first, rows),
        };
        _kernels.Sampler.Sample(_stream, rows, Math.Min(_shape.GroupSize, SamplingKernel.MaxGroupSize), _accelerator.NumMultiprocessors, views, args,
            kernel => Launched("sampling", "sampler " + kernel));
        FinishCapture(); // a captured step ends with its first sampler: the ids are read back from the graph's run
        _sampled.SubView(first, rows).CopyToCPU(_stream, destination);
        _profile?.Mark("ids read-back", "memcpy");
        _stream.Synchronize();
        destination.CopyTo(_lastSampled[sequence]);
        _lastSampledCount[sequence] = rows;
    }

    public void CopyLogits(int sequence, Span<float> destination)
    {
        int v = _w.Config.VocabSize;
        long count = (long)_logitRows[sequence] * v;
        if (destination.Length != count) throw new ArgumentException($"destination holds {destination.Length} floats, logits of sequence {sequence} are [{_logitRows[sequence]}, {v}]");
        FinishCapture();
        Rows(_logits, _logitStart[sequence], _logitRows[sequence], v).CopyToCPU(_stream, destination);
        _profile?.Mark("logits read-back", "memcpy");
        _stream.Synchronize();
    }

    public void Dispose()
    {
        _capture?.Dispose();
        _stream?.Dispose();
        foreach (var b in _buffers) b.Dispose();
        _buffers.Clear();
    }
}
