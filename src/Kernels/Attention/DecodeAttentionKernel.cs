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
    public const int MaxRows = 16, ChunkKeys = 64;
    private const int MaxHeadSize = FlashAttentionKernel.MaxHeadSize, KeyStride = FlashAttentionKernel.KeyStride;

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

    /// <summary>Shared memory a <see cref="Partial"/> group needs (floats): the queries, one chunk of keys or values, the scores.</summary>
    public const int PartialSharedFloats = MaxRows * MaxHeadSize + ChunkKeys * KeyStride + MaxRows * ChunkKeys;

    /// <summary>
    /// What group <paramref name="group"/> of a <see cref="PartialGrid"/> computes (any group size), with
    /// <paramref name="shared"/> (<see cref="PartialSharedFloats"/>) as its shared memory: the kernel above, or a phase
    /// of a fused layer (<see cref="Fused.LayerStepKernel"/>).
    /// </summary>
    public static void PartialCompute(int group, ArrayView<float> query, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> partialOutput,
        ArrayView<float> partialStats, AttentionArgs args, ArrayView<float> shared)
    {
        var qTile = shared.SubView(0, MaxRows * MaxHeadSize);
        var kvTile = shared.SubView(MaxRows * MaxHeadSize, ChunkKeys * KeyStride);
        var scores = shared.SubView(MaxRows * MaxHeadSize + ChunkKeys * KeyStride, MaxRows * ChunkKeys);
        int hd = args.HeadSize, rows = args.Rows, total = args.Start + args.Rows, chunks = Chunks(total);
        int head = group % args.Heads, chunk = group / args.Heads;
        int key0 = chunk * ChunkKeys, count = XMath.Min(ChunkKeys, total - key0);
        int headOffset = head * hd;

        // the rows' queries, pre-scaled, and the chunk's keys (stride 129: lane j's key in bank (j + d) mod 32)
        for (int e = Group.IdxX; e < rows * hd; e += Group.DimX)
        {
            int r = e / hd, d = e - r * hd;
            qTile[r * MaxHeadSize + d] = query[(long)r * args.InputStride + headOffset + d] * args.Scale;
        }
        Stage(keys, key0, count, hd, args.InputStride, headOffset, kvTile);
        Group.Barrier();
        for (int e = Group.IdxX; e < rows * ChunkKeys; e += Group.DimX)
        {
            int r = e / ChunkKeys, j = e % ChunkKeys;
            float s = float.NegativeInfinity;
            if (j < count)
            {
                s = 0;
                for (int d = 0; d < hd; d++) s += qTile[r * MaxHeadSize + d] * kvTile[j * KeyStride + d];
            }
            scores[e] = s;
        }
        Group.Barrier();
        // per row: the chunk's max and sum, scores turned into exp(s - max) in place (at most 16 rows x 64 keys)
        if (Group.IdxX < rows)
        {
            int r = Group.IdxX;
            float max = float.NegativeInfinity;
            for (int j = 0; j < count; j++) max = XMath.Max(max, scores[r * ChunkKeys + j]);
            float sum = 0;
            for (int j = 0; j < count; j++)
            {
                float p = XMath.Exp(scores[r * ChunkKeys + j] - max);
                scores[r * ChunkKeys + j] = p;
                sum += p;
            }
            long stats = (((long)head * chunks + chunk) * rows + r) * 2;
            partialStats[stats] = max;
            partialStats[stats + 1] = sum;
        }
        // the keys are no longer needed: the values take their place
        Stage(values, key0, count, hd, args.InputStride, headOffset, kvTile);
        Group.Barrier();
        for (int e = Group.IdxX; e < rows * hd; e += Group.DimX)
        {
            int r = e / hd, d = e - r * hd;
            float o = 0;
            for (int j = 0; j < count; j++) o += scores[r * ChunkKeys + j] * kvTile[j * KeyStride + d];
            partialOutput[(((long)head * chunks + chunk) * rows + r) * hd + d] = o;
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
