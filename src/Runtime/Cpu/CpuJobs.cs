using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Core;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// Parallel C = A·Wᵀ + bias over chunks of W's rows. A chunk is sized to stay in L2 while all rows
/// of A stream past it, so each weight is read from memory once per call whatever the row count.
/// One instance per session, reused: dispatching allocates nothing.
/// </summary>
public sealed unsafe class MatMulJob : IParallelWork
{
    private const int ChunkBytes = 192 * 1024;
    private float* _a, _w, _bias, _c;
    private int _m, _n, _k, _ldc, _chunk;
    private GemmStore _store;
    private bool _gelu;

    /// <summary>Shapes: a [m, k], w [n, k], bias [n] or null, c [m, ldc].</summary>
    public void Run(WorkerPool pool, float* a, int m, int k, float* w, int n, float* bias, float* c, int ldc, GemmStore store, bool gelu = false)
    {
        _a = a; _m = m; _k = k; _w = w; _n = n; _bias = bias; _c = c; _ldc = ldc; _store = store; _gelu = gelu;
        int byCache = Math.Max(4, ChunkBytes / (k * sizeof(float)) / 4 * 4);
        int byBalance = Math.Max(4, (n + 4 * pool.ThreadCount - 1) / (4 * pool.ThreadCount) / 4 * 4);
        _chunk = Math.Min(byCache, byBalance);
        pool.Run(this, (n + _chunk - 1) / _chunk);
    }

    public void Execute(int task, int worker)
    {
        int n0 = task * _chunk;
        int count = Math.Min(_chunk, _n - n0);
        Gemm.Compute(_a, _k, _w + (long)n0 * _k, _k, _c + n0, _ldc, _m, count, _k, _bias == null ? null : _bias + n0, _store);
        if (_gelu)
            for (int r = 0; r < _m; r++) Activations.GeluInPlace(_c + (long)r * _ldc + n0, count);
    }
}

/// <summary>LayerNorm of each row, rows split across workers.</summary>
internal sealed unsafe class LayerNormJob : IParallelWork
{
    private const int RowsPerTask = 16;
    private float* _x, _weight, _bias, _destination;
    private int _rows, _width;

    public void Run(WorkerPool pool, float* x, int rows, int width, float* weight, float* bias, float* destination)
    {
        _x = x; _rows = rows; _width = width; _weight = weight; _bias = bias; _destination = destination;
        pool.Run(this, (rows + RowsPerTask - 1) / RowsPerTask);
    }

    public void Execute(int task, int worker)
    {
        int end = Math.Min(_rows, (task + 1) * RowsPerTask);
        for (int r = task * RowsPerTask; r < end; r++)
            LayerNorm.Row(_x + (long)r * _width, _weight, _bias, _destination + (long)r * _width, _width);
    }
}

/// <summary>
/// Attention for all heads and query tiles of one layer, for every sequence of a call: task = (sequence, head, tile of
/// rows), so one dispatch covers the whole batch. Each sequence reads only its own cache.
/// </summary>
internal sealed unsafe class AttentionJob : IParallelWork
{
    private struct Segment
    {
        public float* Query, Keys, Values, Output;
        public int* KeyEnds;
        public int Rows, FirstTask;
    }

    private readonly float*[] _scores;
    private readonly Segment[] _segments;
    private int _count, _tasks, _heads, _headSize, _width;

    public AttentionJob(float*[] scoresPerWorker, int maxSequences)
    {
        _scores = scoresPerWorker;
        _segments = new Segment[maxSequences];
    }

    /// <summary>Starts a layer's dispatch; then <see cref="Add"/> each sequence and <see cref="Run"/>.</summary>
    public void Begin(int heads, int headSize)
    {
        _count = 0; _tasks = 0;
        _heads = heads; _headSize = headSize; _width = heads * headSize;
    }

    /// <summary>Shapes: query [rows, C], keys and values [position, C] of this sequence's layer, keyEnds [rows] (exclusive end per row), output [rows, C].</summary>
    public void Add(float* query, int rows, float* keys, float* values, int* keyEnds, float* output)
    {
        _segments[_count++] = new Segment { Query = query, Keys = keys, Values = values, Output = output, KeyEnds = keyEnds, Rows = rows, FirstTask = _tasks };
        _tasks += _heads * ((rows + CpuAttention.TileRows - 1) / CpuAttention.TileRows);
    }

    public void Run(WorkerPool pool) => pool.Run(this, _tasks);

    public void Execute(int task, int worker)
    {
        int s = _count - 1;
        while (_segments[s].FirstTask > task) s--;
        ref readonly var seg = ref _segments[s];
        int local = task - seg.FirstTask;
        int head = local % _heads, tile = local / _heads;
        int r0 = tile * CpuAttention.TileRows;
        int count = Math.Min(CpuAttention.TileRows, seg.Rows - r0);
        long offset = (long)head * _headSize;
        CpuAttention.Tile(seg.Query + (long)r0 * _width + offset, seg.Keys + offset, seg.Values + offset, seg.Output + (long)r0 * _width + offset,
            _width, _headSize, count, new ReadOnlySpan<int>(seg.KeyEnds + r0, count), _scores[worker]);
    }
}

/// <summary>Samples each logits row independently, rows in parallel (MODEL.md §6).</summary>
internal sealed unsafe class SampleJob : IParallelWork
{
    private float* _logits;
    private int _vocab, _step;
    private ulong _seed;
    private SamplingSettings _settings;
    private int* _tokens;
    private readonly float*[] _scaled;
    private readonly ulong*[] _keys;

    public SampleJob(float*[] scaledPerWorker, ulong*[] keysPerWorker)
    {
        _scaled = scaledPerWorker;
        _keys = keysPerWorker;
    }

    public void Run(WorkerPool pool, float* logits, int rows, int vocab, in SamplingSettings settings, ulong seed, int step, int* tokens)
    {
        _logits = logits; _vocab = vocab; _settings = settings; _seed = seed; _step = step; _tokens = tokens;
        pool.Run(this, rows);
    }

    public void Execute(int row, int worker)
    {
        var logits = new ReadOnlySpan<float>(_logits + (long)row * _vocab, _vocab);
        float u = CounterRandom.Uniform(_seed, _step, row);
        try
        {
            _tokens[row] = RowSampler.Sample(logits, _settings, u, new Span<float>(_scaled[worker], _vocab), new Span<ulong>(_keys[worker], _vocab));
        }
        catch (NonFiniteLogitsException e)
        {
            throw new GenerationException($"step {_step}, row {row}: {e.Message}");
        }
    }
}
