using ILGPU;
using ILGPU.Algorithms;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Attention;

public struct AttentionArgs
{
    /// <summary>Output rows are Width apart; query, key and value rows InputStride apart (3·Width in a session, whose
    /// cache rows hold Q|K|V side by side as the fused projection writes them; Width when they are separate).</summary>
    public int Rows, Heads, HeadSize, Width, InputStride;
    /// <summary>Position of the first query row; keys [0, Start + Rows) are in the cache.</summary>
    public int Start;
    /// <summary>MaskMath kind, prefix L and block B: query i reads keys [0, MaskMath.KeyEnd(...)).</summary>
    public int MaskKind, Prefix, Block;
    public float Scale;
}

/// <summary>
/// Block-causal flash attention over the KV cache, one code path for the prefill (any MODEL.md §4
/// mask) and for cached steps (no mask). A group of Q warps (1 to <see cref="MaxQueryRows"/>) takes Q
/// query rows of one head; K and V stream through shared memory in tiles of <see cref="KeyTile"/>
/// keys; each warp keeps an online softmax (running max, running sum, rescaled output) for its row.
/// Masks are never materialised: each row has a key end, key tiles at or past the group's largest
/// end are never loaded, and a warp skips the tiles past its own end.
/// Grid: Heads x ceil(Rows / Q) groups of Q x 32 threads.
/// </summary>
public static class FlashAttentionKernel
{
    public const int MaxQueryRows = 4;
    public const int KeyTile = 32;
    public const int MaxHeadSize = 128;
    /// <summary>
    /// Row stride of the staged keys: lane j reads key j's dimension d at j·KeyStride + d, so with a stride of 128
    /// all 32 lanes hit one bank (a 32-way conflict in the score loop); 129 puts lane j in bank (j + d) mod 32.
    /// </summary>
    public const int KeyStride = MaxHeadSize + 1;

    /// <param name="query">[rows, C]</param>
    /// <param name="keys">this layer's cache, [capacity, C]</param><param name="values">[capacity, C]</param>
    /// <param name="output">[rows, C]</param>
    public static void Attend(ArrayView<float> query, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> output, AttentionArgs args)
    {
        var qTile = SharedMemory.Allocate<float>(MaxQueryRows * MaxHeadSize);
        var kTile = SharedMemory.Allocate<float>(KeyTile * KeyStride);
        var vTile = SharedMemory.Allocate<float>(KeyTile * MaxHeadSize);
        var scores = SharedMemory.Allocate<float>(MaxQueryRows * KeyTile);
        int queryRows = Group.DimX / 32;
        int head = Grid.IdxX % args.Heads;
        int row0 = (Grid.IdxX / args.Heads) * queryRows;
        int warp = Group.IdxX / 32, lane = Group.IdxX % 32;
        int hd = args.HeadSize;
        int total = args.Start + args.Rows;
        long headOffset = (long)head * hd;

        int row = row0 + warp;
        bool active = row < args.Rows;
        int myEnd = active ? MaskMath.KeyEnd(args.MaskKind, args.Prefix, args.Block, args.Start + row, total) : 0;
        // The group's last key: the largest end among its rows (ends grow with the row index).
        int lastRow = XMath.Min(row0 + queryRows, args.Rows) - 1;
        int groupEnd = 0;
        for (int r = row0; r <= lastRow; r++)
            groupEnd = XMath.Max(groupEnd, MaskMath.KeyEnd(args.MaskKind, args.Prefix, args.Block, args.Start + r, total));

        for (int d = lane; d < hd; d += 32)
            qTile[warp * MaxHeadSize + d] = active ? query[(long)row * args.InputStride + headOffset + d] : 0f;

        float runningMax = float.NegativeInfinity, runningSum = 0f;
        float o0 = 0, o1 = 0, o2 = 0, o3 = 0; // output dims lane, lane+32, lane+64, lane+96
        for (int k0 = 0; k0 < groupEnd; k0 += KeyTile)
        {
            Group.Barrier(); // the previous tile is no longer read
            int tileKeys = XMath.Min(KeyTile, groupEnd - k0);
            for (int e = Group.IdxX; e < tileKeys * hd; e += Group.DimX)
            {
                int j = e / hd, d = e % hd;
                long at = (long)(k0 + j) * args.InputStride + headOffset + d;
                kTile[j * KeyStride + d] = keys[at];
                vTile[j * MaxHeadSize + d] = values[at];
            }
            Group.Barrier();
            bool busy = active && k0 < myEnd;
            // lane j scores key k0 + j and publishes it in shared memory
            int key = k0 + lane;
            float score = float.NegativeInfinity;
            if (busy && lane < tileKeys && key < myEnd)
            {
                float dot = 0;
                for (int d = 0; d < hd; d++) dot += qTile[warp * MaxHeadSize + d] * kTile[lane * KeyStride + d];
                score = dot * args.Scale;
            }
            scores[warp * KeyTile + lane] = score;
            Group.Barrier(); // one barrier instead of the 40-odd shuffles of a warp reduction and broadcast
            if (!busy) continue;

            // every lane reads the warp's scores: same max and sum in all lanes
            float tileMax = float.NegativeInfinity;
            for (int j = 0; j < tileKeys; j++) tileMax = XMath.Max(tileMax, scores[warp * KeyTile + j]);
            float newMax = XMath.Max(runningMax, tileMax);
            float correction = XMath.Exp(runningMax - newMax);
            float tileSum = 0;
            o0 *= correction; o1 *= correction; o2 *= correction; o3 *= correction;
            for (int j = 0; j < tileKeys; j++)
            {
                float pj = XMath.Exp(scores[warp * KeyTile + j] - newMax);
                tileSum += pj;
                int v = j * MaxHeadSize + lane;
                if (lane < hd) o0 += pj * vTile[v];
                if (lane + 32 < hd) o1 += pj * vTile[v + 32];
                if (lane + 64 < hd) o2 += pj * vTile[v + 64];
                if (lane + 96 < hd) o3 += pj * vTile[v + 96];
            }
            runningSum = runningSum * correction + tileSum;
            runningMax = newMax;
        }
        if (!active) return;
        float inv = 1f / runningSum;
        long outBase = (long)row * args.Width + headOffset + lane;
        if (lane < hd) output[outBase] = o0 * inv;
        if (lane + 32 < hd) output[outBase + 32] = o1 * inv;
        if (lane + 64 < hd) output[outBase + 64] = o2 * inv;
        if (lane + 96 < hd) output[outBase + 96] = o3 * inv;
    }
}
