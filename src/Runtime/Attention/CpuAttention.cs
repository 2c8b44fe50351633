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
        Span<float> inverse = rows <= 256 ? stackalloc float[rows] : new float[rows]; // callers normally pass TileRows
        for (int r = 0; r < rows; r++)
        {
            int end = keyEnds[r];
            var row = new Span<float>(scores + (long)r * maxEnd, end);
            TensorPrimitives.Multiply(row, scale, row);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            inverse[r] = 1f / TensorPrimitives.Sum(row);
            // keys this row may not see weigh nothing in the row group's shared pass over the values
            new Span<float>(scores + (long)r * maxEnd + end, maxEnd - end).Clear();
        }
        for (int r0 = 0; r0 < rows; r0 += 4)
        {
            int n = Math.Min(4, rows - r0), groupEnd = 0;
            for (int r = r0; r < r0 + n; r++) groupEnd = Math.Max(groupEnd, keyEnds[r]);
            WeightedSums(scores + (long)r0 * maxEnd, maxEnd, n, groupEnd, values, stride, headSize, inverse[r0..], output + (long)r0 * stride);
        }
    }

    /// <summary>
    /// output[r, :] = inverse[r] · Σ_j p[r, j]·v_j for up to four rows at once (P·V as an outer-product
    /// GEMM): each value row is loaded once per group of rows, not once per row, which matters for the
    /// cached step where 16 rows read the same 1280 strided value rows. 32 (then 16) dimensions at a time.
    /// </summary>
    private static void WeightedSums(float* p, int ldp, int rows, int count, float* values, int stride, int headSize, ReadOnlySpan<float> inverse, float* output)
    {
        float* p0 = p, p1 = p + (rows > 1 ? ldp : 0), p2 = p + (rows > 2 ? 2L * ldp : 0), p3 = p + (rows > 3 ? 3L * ldp : 0);
        int d = 0;
        for (; d + 32 <= headSize; d += 32)
        {
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            float* v = values + d;
            for (int j = 0; j < count; j++, v += stride)
            {
                var lo = Vector512.Load(v);
                var hi = Vector512.Load(v + 16);
                var x = Vector512.Create(p0[j]); a0 = Vector512.FusedMultiplyAdd(x, lo, a0); b0 = Vector512.FusedMultiplyAdd(x, hi, b0);
                x = Vector512.Create(p1[j]); a1 = Vector512.FusedMultiplyAdd(x, lo, a1); b1 = Vector512.FusedMultiplyAdd(x, hi, b1);
                x = Vector512.Create(p2[j]); a2 = Vector512.FusedMultiplyAdd(x, lo, a2); b2 = Vector512.FusedMultiplyAdd(x, hi, b2);
                x = Vector512.Create(p3[j]); a3 = Vector512.FusedMultiplyAdd(x, lo, a3); b3 = Vector512.FusedMultiplyAdd(x, hi, b3);
            }
            StorePair(output, 0, d, a0, b0, inverse);
            if (rows > 1) StorePair(output + stride, 1, d, a1, b1, inverse);
            if (rows > 2) StorePair(output + 2L * stride, 2, d, a2, b2, inverse);
            if (rows > 3) StorePair(output + 3L * stride, 3, d, a3, b3, inverse);
        }
        if (d < headSize)
            for (int r = 0; r < rows; r++)
                WeightedSum(p + (long)r * ldp, count, values + d, stride, headSize - d, inverse[r], output + (long)r * stride + d);
    }

    private static void StorePair(float* row, int r, int d, Vector512<float> lo, Vector512<float> hi, ReadOnlySpan<float> inverse)
    {
        (lo * inverse[r]).Store(row + d);
        (hi * inverse[r]).Store(row + d + 16);
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
