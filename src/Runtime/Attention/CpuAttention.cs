using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using NbpEngine.Runtime.Cpu;

namespace NbpEngine.Runtime.Attention;

/// <summary>
/// Attention of a tile of query rows of one head against the KV cache, CPU reference and fast path.
/// Scores are computed only up to the tile's largest key end, so masked key ranges are never
/// touched and no mask matrix exists; each row then softmaxes over its own prefix.
/// </summary>
public static unsafe class CpuAttention
{
    /// <summary>Query rows per tile; bounds the per-worker score scratch to TileRows x capacity.</summary>
    public const int TileRows = 16;

    /// <param name="query">first query row of the tile, head offset applied; rows <paramref name="stride"/> apart ([rows, C])</param>
    /// <param name="keys">key of position 0, head offset applied ([position, C] cache layout)</param>
    /// <param name="values">value of position 0, head offset applied</param>
    /// <param name="output">first output row, head offset applied</param>
    /// <param name="keyEnds">per row of the tile: exclusive key end</param>
    /// <param name="scores">scratch of at least rows x max(keyEnds) floats</param>
    public static void Tile(float* query, float* keys, float* values, float* output, int stride, int headSize, int rows,
        ReadOnlySpan<int> keyEnds, float* scores)
    {
        int maxEnd = 0;
        for (int r = 0; r < rows; r++) maxEnd = Math.Max(maxEnd, keyEnds[r]);
        // scores[r, j] = q_r · k_j for j < maxEnd: the GEMM core with keys as the "weight" rows.
        Gemm.Compute(query, stride, keys, stride, scores, maxEnd, rows, maxEnd, headSize, null, GemmStore.Overwrite);
        float scale = 1f / MathF.Sqrt(headSize);
        for (int r = 0; r < rows; r++)
        {
            int end = keyEnds[r];
            var row = new Span<float>(scores + (long)r * maxEnd, end);
            TensorPrimitives.Multiply(row, scale, row);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            float inv = 1f / TensorPrimitives.Sum(row);
            WeightedSum(scores + (long)r * maxEnd, end, values, stride, headSize, inv, output + (long)r * stride);
        }
    }

    /// <summary>output[d] = scale · Σ_j p[j]·v_j[d], four keys per iteration to hide FMA latency.</summary>
    private static void WeightedSum(float* p, int count, float* values, int stride, int headSize, float scale, float* output)
    {
        int d = 0;
        for (; d + 16 <= headSize; d += 16)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            float* v = values + d;
            int j = 0;
            for (; j + 4 <= count; j += 4)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(v + (long)j * stride), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j + 1]), Vector512.Load(v + (long)(j + 1) * stride), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j + 2]), Vector512.Load(v + (long)(j + 2) * stride), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j + 3]), Vector512.Load(v + (long)(j + 3) * stride), s3);
            }
            for (; j < count; j++) s0 = Vector512.FusedMultiplyAdd(Vector512.Create(p[j]), Vector512.Load(v + (long)j * stride), s0);
            Vector512.Store(((s0 + s1) + (s2 + s3)) * scale, output + d);
        }
        for (; d < headSize; d++)
        {
            float s = 0;
            for (int j = 0; j < count; j++) s += p[j] * values[(long)j * stride + d];
            output[d] = s * scale;
        }
    }
}
