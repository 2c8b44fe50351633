using ILGPU;
using ILGPU.Algorithms;

namespace NbpEngine.Kernels.Attention;

/// <summary>
/// Attention for a cached step (no mask: every fed row reads the whole cache, its own block included), split over
/// keys like flash-decoding: the flash kernel gives each group a few query rows of one head, so a 16-row step made
/// only heads x 4 groups, each streaming the whole cache of its head; here a group takes ALL the step's rows
/// (at most <see cref="MaxRows"/>) of one head over one chunk of <see cref="ChunkKeys"/> keys, so the cache is read
/// once and a long cache spreads over heads x chunks groups. <see cref="Partial"/> leaves, per (head, chunk, row), the
/// chunk's softmax max, sum and unnormalised output; <see cref="Combine"/> merges the chunks (a second launch: the
/// kernel boundary is the only grid-wide barrier that needs no memory-model reasoning).
/// </summary>
public static class DecodeAttentionKernel
{
    public const int MaxRows = 16, ChunkKeys = 32;
    private const int MaxHeadSize = FlashAttentionKernel.MaxHeadSize, KeyStride = FlashAttentionKernel.KeyStride;
    /// <summary>Row strides of the staged queries and scores: odd, so a warp reading several rows hits distinct banks.</summary>
    private const int QueryStride = MaxHeadSize + 1, ScoreStride = ChunkKeys + 1;
    /// <summary>
    /// Scores (keys) or outputs a thread sums at once: independent sums whose shared loads overlap, where one sum at a time
    /// waits out a shared load every multiply-add (ptxas does not unroll these loops). Each sum keeps its own order.
    /// </summary>
    private const int Lanes = 4, KeyGroups = ChunkKeys / Lanes;

    /// <summary>Chunks of keys a step over <paramref name="totalKeys"/> cached positions splits into.</summary>
    public static int Chunks(int totalKeys) => (totalKeys + ChunkKeys - 1) / ChunkKeys;

    /// <summary>Groups of <see cref="Partial"/> for <paramref name="rows"/> rows at position <paramref name="start"/>: heads x chunks (host and device).</summary>
    public static int PartialGroups(int heads, int start, int rows) => heads * Chunks(start + rows);

    /// <summary>Grid for <see cref="Partial"/>.</summary>
    public static KernelConfig PartialGrid(AttentionArgs args, int groupSize) => new(PartialGroups(args.Heads, args.Start, args.Rows), groupSize);

    /// <summary>Grid for <see cref="Combine"/>: one thread per output value.</summary>
    public static KernelConfig CombineGrid(AttentionArgs args, int groupSize) => new((args.Rows * args.Width + groupSize - 1) / groupSize, groupSize);

    /// <param name="partialOutput">[heads, chunks, rows, headSize]</param><param name="partialStats">[heads, chunks, rows, 2]: max, sum</param>
    public static void Partial(ArrayView<float> query, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> partialOutput, ArrayView<float> partialStats,
        AttentionArgs args)
        => PartialCompute(Grid.IdxX, query, keys, values, partialOutput, partialStats, args, SharedMemory.Allocate<float>(PartialSharedFloats));

    /// <summary>Shared memory a <see cref="Partial"/> group needs (floats): the queries, one chunk of keys and of values, the scores.</summary>
    public const int PartialSharedFloats = MaxRows * QueryStride + 2 * ChunkKeys * KeyStride + MaxRows * ScoreStride;

    /// <summary>
    /// What group <paramref name="group"/> of a <see cref="PartialGrid"/> computes (any group size), with
    /// <paramref name="shared"/> (<see cref="PartialSharedFloats"/>) as its shared memory: the kernel above, or a phase
    /// of a fused layer (<see cref="Fused.LayerStepKernel"/>).
    /// </summary>
    /// <remarks>
    /// Nsight Compute (H200, K600 step, 64-key chunks) found this kernel at one 4-warp group an SM and 6.6% occupancy,
    /// each group waiting out one dependent shared load per multiply-add: 94 µs a layer. So: 32-key chunks (twice the
    /// groups, half the walk each), the keys and values staged together before one barrier, and <see cref="Lanes"/>
    /// independent sums a thread.
    /// </remarks>
    public static void PartialCompute(int group, ArrayView<float> query, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> partialOutput,
        ArrayView<float> partialStats, AttentionArgs args, ArrayView<float> shared)
    {
        var qTile = shared.SubView(0, MaxRows * QueryStride);
        var kTile = shared.SubView(MaxRows * QueryStride, ChunkKeys * KeyStride);
        var vTile = shared.SubView(MaxRows * QueryStride + ChunkKeys * KeyStride, ChunkKeys * KeyStride);
        var scores = shared.SubView(MaxRows * QueryStride + 2 * ChunkKeys * KeyStride, MaxRows * ScoreStride);
        int hd = args.HeadSize, rows = args.Rows, total = args.Start + args.Rows, chunks = Chunks(total);
        int head = group % args.Heads, chunk = group / args.Heads;
        int key0 = chunk * ChunkKeys, count = XMath.Min(ChunkKeys, total - key0);
        int headOffset = head * hd;

        // the rows' queries, pre-scaled, and the chunk's keys and values, all loads in flight before one barrier
        for (int e = Group.IdxX; e < rows * hd; e += Group.DimX)
        {
            int r = e / hd, d = e - r * hd;
            qTile[r * QueryStride + d] = query[(long)r * args.InputStride + headOffset + d] * args.Scale;
        }
        Stage(keys, key0, count, hd, args.InputStride, headOffset, kTile);
        Stage(values, key0, count, hd, args.InputStride, headOffset, vTile);
        Group.Barrier();
        // scores: a thread takes row r's keys g, g + 8, g + 16, g + 24 (a warp's lanes read 8 keys in distinct banks, and
        // 4 rows' queries in distinct banks); keys past the chunk's end score -inf
        for (int item = Group.IdxX; item < rows * KeyGroups; item += Group.DimX)
        {
            int r = item / KeyGroups, g = item - r * KeyGroups;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int d = 0; d < hd; d++)
            {
                float q = qTile[r * QueryStride + d];
                s0 += q * kTile[g * KeyStride + d];
                s1 += q * kTile[(g + KeyGroups) * KeyStride + d];
                s2 += q * kTile[(g + 2 * KeyGroups) * KeyStride + d];
                s3 += q * kTile[(g + 3 * KeyGroups) * KeyStride + d];
            }
            scores[r * ScoreStride + g] = g < count ? s0 : float.NegativeInfinity;
            scores[r * ScoreStride + g + KeyGroups] = g + KeyGroups < count ? s1 : float.NegativeInfinity;
            scores[r * ScoreStride + g + 2 * KeyGroups] = g + 2 * KeyGroups < count ? s2 : float.NegativeInfinity;
            scores[r * ScoreStride + g + 3 * KeyGroups] = g + 3 * KeyGroups < count ? s3 : float.NegativeInfinity;
        }
        Group.Barrier();
        // per row: the chunk's max and sum, scores turned into exp(s - max) in place
        if (Group.IdxX < rows)
        {
            int r = Group.IdxX;
            float max = float.NegativeInfinity;
            for (int j = 0; j < count; j++) max = XMath.Max(max, scores[r * ScoreStride + j]);
            float sum = 0;
            int at = 0;
            for (; at + 3 < count; at += 4) // four exps in flight, added in key order
            {
                float p0 = XMath.Exp(scores[r * ScoreStride + at] - max), p1 = XMath.Exp(scores[r * ScoreStride + at + 1] - max);
                float p2 = XMath.Exp(scores[r * ScoreStride + at + 2] - max), p3 = XMath.Exp(scores[r * ScoreStride + at + 3] - max);
                scores[r * ScoreStride + at] = p0; scores[r * ScoreStride + at + 1] = p1;
                scores[r * ScoreStride + at + 2] = p2; scores[r * ScoreStride + at + 3] = p3;
                sum += p0; sum += p1; sum += p2; sum += p3;
            }
            for (; at < count; at++)
            {
                float p = XMath.Exp(scores[r * ScoreStride + at] - max);
                scores[r * ScoreStride + at] = p;
                sum += p;
            }
            long stats = (((long)head * chunks + chunk) * rows + r) * 2;
            partialStats[stats] = max;
            partialStats[stats + 1] = sum;
        }
        Group.Barrier();
        // outputs: a thread takes row r's dimensions c, c + G, c + 2G, c + 3G (G = hd / 4 rounded up; a warp's lanes read
        // consecutive dimensions of a value row)
        int spread = (hd + Lanes - 1) / Lanes;
        for (int item = Group.IdxX; item < rows * spread; item += Group.DimX)
        {
            int r = item / spread, c = item - r * spread;
            bool in1 = c + spread < hd, in2 = c + 2 * spread < hd, in3 = c + 3 * spread < hd;
            float o0 = 0, o1 = 0, o2 = 0, o3 = 0;
            for (int j = 0; j < count; j++)
            {
                float p = scores[r * ScoreStride + j];
                o0 += p * vTile[j * KeyStride + c];
                o1 += p * (in1 ? vTile[j * KeyStride + c + spread] : 0f);
                o2 += p * (in2 ? vTile[j * KeyStride + c + 2 * spread] : 0f);
                o3 += p * (in3 ? vTile[j * KeyStride + c + 3 * spread] : 0f);
            }
            long output = (((long)head * chunks + chunk) * rows + r) * hd + c;
            partialOutput[output] = o0;
            if (in1) partialOutput[output + spread] = o1;
            if (in2) partialOutput[output + 2 * spread] = o2;
            if (in3) partialOutput[output + 3 * spread] = o3;
        }
    }

    /// <summary>
    /// Rows [first, first + count) of one head's keys or values into the tile (stride <c>KeyStride</c>), four loads a
    /// thread in flight: ptxas does not unroll these loops, and a thread that waits out each cache read before the next
    /// makes the copy, not the arithmetic, the cost of a chunk.
    /// </summary>
    private static void Stage(ArrayView<float> source, int first, int count, int hd, int inputStride, int headOffset, ArrayView<float> tile)
    {
        int n = count * hd, step = Group.DimX, e = Group.IdxX;
        for (; e + 3 * step < n; e += 4 * step)
        {
            int e1 = e + step, e2 = e + 2 * step, e3 = e + 3 * step;
            int j0 = e / hd, j1 = e1 / hd, j2 = e2 / hd, j3 = e3 / hd;
            float v0 = source[(long)(first + j0) * inputStride + headOffset + e - j0 * hd];
            float v1 = source[(long)(first + j1) * inputStride + headOffset + e1 - j1 * hd];
            float v2 = source[(long)(first + j2) * inputStride + headOffset + e2 - j2 * hd];
            float v3 = source[(long)(first + j3) * inputStride + headOffset + e3 - j3 * hd];
            tile[j0 * KeyStride + e - j0 * hd] = v0;
            tile[j1 * KeyStride + e1 - j1 * hd] = v1;
            tile[j2 * KeyStride + e2 - j2 * hd] = v2;
            tile[j3 * KeyStride + e3 - j3 * hd] = v3;
        }
        for (; e < n; e += step)
        {
            int j = e / hd;
            tile[j * KeyStride + e - j * hd] = source[(long)(first + j) * inputStride + headOffset + e - j * hd];
        }
    }

    /// <summary>output[r, head·hd + d] = Σ_chunks o·e^(m - M) / Σ_chunks l·e^(m - M), M the largest chunk max.</summary>
    public static void Combine(ArrayView<float> partialOutput, ArrayView<float> partialStats, ArrayView<float> output, AttentionArgs args)
        => CombineCompute(Grid.GlobalIndex.X, partialOutput, partialStats, output, args);

    /// <summary>Output value <paramref name="e"/> (row-major [rows, width]) of <see cref="Combine"/>; nothing past the last.</summary>
    public static void CombineCompute(int e, ArrayView<float> partialOutput, ArrayView<float> partialStats, ArrayView<float> output, AttentionArgs args)
    {
        if (e >= args.Rows * args.Width) return;
        int hd = args.HeadSize, rows = args.Rows, chunks = Chunks(args.Start + args.Rows);
        int r = e / args.Width, column = e - r * args.Width, head = column / hd, d = column - head * hd;
        // loads issued ahead of their use (ptxas unrolls neither loop): the max is order-free, the sums keep chunk order
        long first = (long)head * chunks * rows + r; // chunk c's (head, c, r) entry is first + c·rows
        float max = float.NegativeInfinity;
        int c = 0;
        for (; c + 3 < chunks; c += 4)
        {
            float m0 = partialStats[(first + c * rows) * 2], m1 = partialStats[(first + (c + 1) * rows) * 2];
            float m2 = partialStats[(first + (c + 2) * rows) * 2], m3 = partialStats[(first + (c + 3) * rows) * 2];
            max = XMath.Max(XMath.Max(max, m0), XMath.Max(m1, XMath.Max(m2, m3)));
        }
        for (; c < chunks; c++) max = XMath.Max(max, partialStats[(first + c * rows) * 2]);
        float sum = 0, o = 0;
        for (c = 0; c + 1 < chunks; c += 2)
        {
            long at0 = first + c * rows, at1 = at0 + rows;
            float m0 = partialStats[at0 * 2], l0 = partialStats[at0 * 2 + 1], x0 = partialOutput[at0 * hd + d];
            float m1 = partialStats[at1 * 2], l1 = partialStats[at1 * 2 + 1], x1 = partialOutput[at1 * hd + d];
            float scale0 = XMath.Exp(m0 - max);
            sum += l0 * scale0;
            o += x0 * scale0;
            float scale1 = XMath.Exp(m1 - max);
            sum += l1 * scale1;
            o += x1 * scale1;
        }
        if (c < chunks)
        {
            long at = first + c * rows;
            float scale = XMath.Exp(partialStats[at * 2] - max);
            sum += partialStats[at * 2 + 1] * scale;
            o += partialOutput[at * hd + d] * scale;
        }
        output[(long)r * args.Width + column] = o / sum;
    }
}
