using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using NbpEngine.Runtime.Cpu;

namespace NbpEngine.Runtime.Attention;

/// <summary>
/// Attention of a tile of query rows of one head against the KV cache, CPU reference and fast path.
/// Scores are computed only up to the tile's largest key end, so masked key ranges are never
/// touched and no mask matrix exists; each row then softmaxes over its own prefix.
/// Scores are kept transposed, [key, 16 rows]: S = K·Qᵀ runs on the packed outer-product GEMM with the
/// (at most 16) query rows packed as its one panel, so there are no horizontal sums (the dot-product form
/// spent half the cached step in them at head size 96); each key's 16 scores are one Vector512, so the
/// softmax of all rows runs lane-wise, and P·V reads each key's probabilities from one cache line.
/// </summary>
public static unsafe class CpuAttention
{
    /// <summary>Query rows per tile: one Vector512 of scores per key.</summary>
    public const int TileRows = 16;

    /// <param name="query">first query row of the tile, head offset applied; rows <paramref name="stride"/> apart ([rows, C])</param>
    /// <param name="keys">key of position 0, head offset applied ([position, C] cache layout)</param>
    /// <param name="values">value of position 0, head offset applied</param>
    /// <param name="output">first output row, head offset applied</param>
    /// <param name="keyEnds">per row: exclusive key end</param>
    /// <param name="scores">scratch of at least <see cref="TileRows"/> x max(keyEnds) floats, 64-byte aligned not required</param>
    /// <remarks>Any number of rows; they are taken <see cref="TileRows"/> at a time.</remarks>
    public static void Tile(float* query, float* keys, float* values, float* output, int stride, int headSize, int rows,
        ReadOnlySpan<int> keyEnds, float* scores)
    {
        if (headSize > MaxHeadSize) throw new ArgumentOutOfRangeException(nameof(headSize), headSize, $"head size above {MaxHeadSize}");
        for (int r0 = 0; r0 < rows; r0 += TileRows)
        {
            int n = Math.Min(TileRows, rows - r0);
            Tile16(query + (long)r0 * stride, keys, values, output + (long)r0 * stride, stride, headSize, n, keyEnds.Slice(r0, n), scores);
        }
    }

    public const int MaxHeadSize = 256;

    private static void Tile16(float* query, float* keys, float* values, float* output, int stride, int headSize, int rows,
        ReadOnlySpan<int> keyEnds, float* scores)
    {
        int maxEnd = 0;
        for (int r = 0; r < rows; r++) maxEnd = Math.Max(maxEnd, keyEnds[r]);
        // scoresᵀ[j, r] = k_j · q_r for j < maxEnd, [key, rows]: a full tile's 16 lanes per key are one
        // Vector512; a partial one (NTP's single row, tails) keeps only its rows, so its softmax does not pay for 16
        if (rows == 1)
        {
            // one row (NTP steps): dot products; the packed panel would compute 32 columns to use one
            // ([1, keys] and [keys, 1] are the same layout)
            Gemm.Compute(query, stride, keys, stride, scores, maxEnd, 1, maxEnd, headSize, null, GemmStore.Overwrite);
        }
        else
        {
            // the query rows as one packed panel [headSize, 32]: column r = row r (columns >= rows zero)
            float* panel = stackalloc float[MaxHeadSize * PackedGemm.PanelWidth];
            new Span<float>(panel, headSize * PackedGemm.PanelWidth).Clear();
            for (int r = 0; r < rows; r++)
                for (int d = 0; d < headSize; d++) panel[d * PackedGemm.PanelWidth + r] = query[(long)r * stride + d];
            PackedGemm.ComputePanel(new SegmentedRows(keys, stride, headSize, 0), panel, headSize, rows, scores, rows, 0, maxEnd, null, GemmStore.Overwrite);
        }
        Span<float> inverse = stackalloc float[TileRows];
        if (rows == TileRows && PackedGemm.Wide) SoftmaxLanes(scores, maxEnd, keyEnds, 1f / MathF.Sqrt(headSize), inverse);
        else if (rows == TileRows) SoftmaxLanes256(scores, maxEnd, keyEnds, 1f / MathF.Sqrt(headSize), inverse);
        else SoftmaxRows(scores, rows, maxEnd, keyEnds, 1f / MathF.Sqrt(headSize), inverse);

        for (int r0 = 0; r0 < rows; r0 += 4)
        {
            int n = Math.Min(4, rows - r0), groupEnd = 0;
            for (int r = r0; r < r0 + n; r++) groupEnd = Math.Max(groupEnd, keyEnds[r]);
            if (PackedGemm.Wide) WeightedSums(scores + r0, rows, n, groupEnd, values, stride, headSize, inverse[r0..], output + (long)r0 * stride);
            else WeightedSums256(scores + r0, rows, n, groupEnd, values, stride, headSize, inverse[r0..], output + (long)r0 * stride);
        }
    }

    /// <summary>
    /// Softmax of 16 rows at once over scores [key, 16]: lane r of key j is row r's score; keys past a
    /// row's end become -inf, so they weigh exactly 0 after exp. Leaves exp(s - max) in place and the
    /// rows' 1/sum in <paramref name="inverse"/>.
    /// </summary>
    private static void SoftmaxLanes(float* scores, int maxEnd, ReadOnlySpan<int> keyEnds, float scaleValue, Span<float> inverse)
    {
        var scale = Vector512.Create(scaleValue);
        var ends = Vector512.Create<int>(keyEnds[..TileRows]);
        var negativeInfinity = Vector512.Create(float.NegativeInfinity);
        var max = negativeInfinity;
        for (int j = 0; j < maxEnd; j++)
        {
            var visible = Vector512.GreaterThan(ends, Vector512.Create(j)).AsSingle();
            var s = Vector512.ConditionalSelect(visible, Vector512.Load(scores + j * TileRows) * scale, negativeInfinity);
            s.Store(scores + j * TileRows);
            max = Vector512.Max(max, s);
        }
        for (int j = 0; j < maxEnd; j++) (Vector512.Load(scores + j * TileRows) - max).Store(scores + j * TileRows);
        var all = new Span<float>(scores, maxEnd * TileRows);
        TensorPrimitives.Exp(all, all);
        var sum = Vector512<float>.Zero;
        for (int j = 0; j < maxEnd; j++) sum += Vector512.Load(scores + j * TileRows);
        for (int r = 0; r < TileRows; r++) inverse[r] = 1f / sum[r];
    }

    /// <summary>
    /// <see cref="SoftmaxLanes"/> on AVX2-only machines (<see cref="PackedGemm.Wide"/> false, where Vector512 runs in
    /// software): each key's 16 scores as two Vector256, rows 0-7 and 8-15. Lane for lane the same arithmetic.
    /// </summary>
    private static void SoftmaxLanes256(float* scores, int maxEnd, ReadOnlySpan<int> keyEnds, float scaleValue, Span<float> inverse)
    {
        var scale = Vector256.Create(scaleValue);
        var endsLow = Vector256.Create<int>(keyEnds[..8]);
        var endsHigh = Vector256.Create<int>(keyEnds[8..TileRows]);
        var negativeInfinity = Vector256.Create(float.NegativeInfinity);
        var maxLow = negativeInfinity;
        var maxHigh = negativeInfinity;
        for (int j = 0; j < maxEnd; j++)
        {
            var key = Vector256.Create(j);
            float* s = scores + j * TileRows;
            var low = Vector256.ConditionalSelect(Vector256.GreaterThan(endsLow, key).AsSingle(), Vector256.Load(s) * scale, negativeInfinity);
            var high = Vector256.ConditionalSelect(Vector256.GreaterThan(endsHigh, key).AsSingle(), Vector256.Load(s + 8) * scale, negativeInfinity);
            low.Store(s);
            high.Store(s + 8);
            maxLow = Vector256.Max(maxLow, low);
            maxHigh = Vector256.Max(maxHigh, high);
        }
        for (int j = 0; j < maxEnd; j++)
        {
            float* s = scores + j * TileRows;
            (Vector256.Load(s) - maxLow).Store(s);
            (Vector256.Load(s + 8) - maxHigh).Store(s + 8);
        }
        var all = new Span<float>(scores, maxEnd * TileRows);
        TensorPrimitives.Exp(all, all);
        var sumLow = Vector256<float>.Zero;
        var sumHigh = Vector256<float>.Zero;
        for (int j = 0; j < maxEnd; j++)
        {
            sumLow += Vector256.Load(scores + j * TileRows);
            sumHigh += Vector256.Load(scores + j * TileRows + 8);
        }
        for (int r = 0; r < 8; r++)
        {
            inverse[r] = 1f / sumLow[r];
            inverse[r + 8] = 1f / sumHigh[r];
        }
    }

    /// <summary>
    /// The same for fewer than 16 rows over scores [key, rows]: each row is gathered into the scratch
    /// past the scores (there is room: the scratch holds 16 x maxEnd), softmaxed contiguously, scattered
    /// back, and zeroed past its end.
    /// </summary>
    private static void SoftmaxRows(float* scores, int rows, int maxEnd, ReadOnlySpan<int> keyEnds, float scale, Span<float> inverse)
    {
        float* temp = scores + (long)rows * maxEnd;
        for (int r = 0; r < rows; r++)
        {
            int end = keyEnds[r];
            for (int j = 0; j < end; j++) temp[j] = scores[(long)j * rows + r];
            var row = new Span<float>(temp, end);
            TensorPrimitives.Multiply(row, scale, row);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, row);
            TensorPrimitives.Exp(row, row);
            inverse[r] = 1f / TensorPrimitives.Sum(row);
            for (int j = 0; j < end; j++) scores[(long)j * rows + r] = temp[j];
            for (int j = end; j < maxEnd; j++) scores[(long)j * rows + r] = 0;
        }
    }

    /// <summary>
    /// output[r, :] = inverse[r] · Σ_j p[j, r]·v_j for up to four rows at once (P·V as an outer-product
    /// GEMM over transposed probabilities, <paramref name="ldp"/> floats per key): each value row is loaded
    /// once per group of rows, not once per row. 32 dimensions at a time, then the rest row by row.
    /// </summary>
    private static void WeightedSums(float* p, int ldp, int rows, int count, float* values, int stride, int headSize, ReadOnlySpan<float> inverse, float* output)
    {
        // rows past the group reuse row 0's probabilities; their sums are computed and dropped
        float* p0 = p, p1 = p + (rows > 1 ? 1 : 0), p2 = p + (rows > 2 ? 2 : 0), p3 = p + (rows > 3 ? 3 : 0);
        int d = 0;
        for (; d + 32 <= headSize; d += 32)
        {
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            float* v = values + d;
            for (long j = 0; j < count; j++, v += stride)
            {
                var lo = Vector512.Load(v);
                var hi = Vector512.Load(v + 16);
                long pj = j * ldp;
                var x = Vector512.Create(p0[pj]); a0 = Vector512.FusedMultiplyAdd(x, lo, a0); b0 = Vector512.FusedMultiplyAdd(x, hi, b0);
                x = Vector512.Create(p1[pj]); a1 = Vector512.FusedMultiplyAdd(x, lo, a1); b1 = Vector512.FusedMultiplyAdd(x, hi, b1);
                x = Vector512.Create(p2[pj]); a2 = Vector512.FusedMultiplyAdd(x, lo, a2); b2 = Vector512.FusedMultiplyAdd(x, hi, b2);
                x = Vector512.Create(p3[pj]); a3 = Vector512.FusedMultiplyAdd(x, lo, a3); b3 = Vector512.FusedMultiplyAdd(x, hi, b3);
            }
            StorePair(output, 0, d, a0, b0, inverse);
            if (rows > 1) StorePair(output + stride, 1, d, a1, b1, inverse);
            if (rows > 2) StorePair(output + 2L * stride, 2, d, a2, b2, inverse);
            if (rows > 3) StorePair(output + 3L * stride, 3, d, a3, b3, inverse);
        }
        ScalarDimensions(p, ldp, rows, count, values, stride, d, headSize, inverse, output);
    }

    /// <summary>
    /// <see cref="WeightedSums"/> on AVX2-only machines: 16 dimensions at a time (4 rows x 2 Vector256 accumulators fit
    /// the 16 registers); every output still accumulates over keys in order, one FMA per key.
    /// </summary>
    private static void WeightedSums256(float* p, int ldp, int rows, int count, float* values, int stride, int headSize, ReadOnlySpan<float> inverse, float* output)
    {
        float* p0 = p, p1 = p + (rows > 1 ? 1 : 0), p2 = p + (rows > 2 ? 2 : 0), p3 = p + (rows > 3 ? 3 : 0);
        int d = 0;
        for (; d + 16 <= headSize; d += 16)
        {
            Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            float* v = values + d;
            for (long j = 0; j < count; j++, v += stride)
            {
                var lo = Vector256.Load(v);
                var hi = Vector256.Load(v + 8);
                long pj = j * ldp;
                var x = Vector256.Create(p0[pj]); a0 = Vector256.FusedMultiplyAdd(x, lo, a0); b0 = Vector256.FusedMultiplyAdd(x, hi, b0);
                x = Vector256.Create(p1[pj]); a1 = Vector256.FusedMultiplyAdd(x, lo, a1); b1 = Vector256.FusedMultiplyAdd(x, hi, b1);
                x = Vector256.Create(p2[pj]); a2 = Vector256.FusedMultiplyAdd(x, lo, a2); b2 = Vector256.FusedMultiplyAdd(x, hi, b2);
                x = Vector256.Create(p3[pj]); a3 = Vector256.FusedMultiplyAdd(x, lo, a3); b3 = Vector256.FusedMultiplyAdd(x, hi, b3);
            }
            StorePair(output, 0, d, a0, b0, inverse);
            if (rows > 1) StorePair(output + stride, 1, d, a1, b1, inverse);
            if (rows > 2) StorePair(output + 2L * stride, 2, d, a2, b2, inverse);
            if (rows > 3) StorePair(output + 3L * stride, 3, d, a3, b3, inverse);
        }
        ScalarDimensions(p, ldp, rows, count, values, stride, d, headSize, inverse, output);
    }

    /// <summary>Dimensions [from, headSize) past the last whole vector block, one at a time.</summary>
    private static void ScalarDimensions(float* p, int ldp, int rows, int count, float* values, int stride, int from, int headSize, ReadOnlySpan<float> inverse, float* output)
    {
        for (int d = from; d < headSize; d++)
            for (int r = 0; r < rows; r++)
            {
                float s = 0;
                for (long j = 0; j < count; j++) s += p[j * ldp + r] * values[j * stride + d];
                output[(long)r * stride + d] = s * inverse[r];
            }
    }

    private static void StorePair(float* row, int r, int d, Vector256<float> lo, Vector256<float> hi, ReadOnlySpan<float> inverse)
    {
        (lo * inverse[r]).Store(row + d);
        (hi * inverse[r]).Store(row + d + 8);
    }

    private static void StorePair(float* row, int r, int d, Vector512<float> lo, Vector512<float> hi, ReadOnlySpan<float> inverse)
    {
        (lo * inverse[r]).Store(row + d);
        (hi * inverse[r]).Store(row + d + 16);
    }
}
