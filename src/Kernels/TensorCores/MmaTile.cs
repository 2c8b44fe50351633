using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.TensorCores;

/// <summary>
/// Where a tensor-core GEMM gets its operands: a cursor over one row that hands 8 consecutive k at a time (zeros past
/// the operand's rows or its depth). A thread keeps its source across slices and always reads the same row, deeper
/// each slice, so a source can keep per-row work (a conv's position decode) and walk its depth incrementally. A
/// source either hands fp32 values, which the main loop rounds to fp16, or fp16 bits already packed
/// (<see cref="Packed"/> is a constant of the struct, so ILGPU folds the choice away).
/// </summary>
public interface IOperandSource
{
    bool Packed { get; }

    /// <summary>Moves the cursor to (row, k); k is a multiple of 8.</summary>
    void Seek(int row, int k);

    /// <summary>The 8 values at the cursor; the cursor then moves 8 deeper.</summary>
    Vec8 Next8();

    /// <summary>The 8 values at the cursor as fp16 bits (packed sources); the cursor then moves 8 deeper.</summary>
    Bits128 NextPacked8();
}

/// <summary>
/// The one tensor-core main loop, shared by the prefill GEMM and the tokenizer's implicit-GEMM conv:
/// C[m0.., n0..] = A·Bᵀ over depth k, A [rows, k] and B [columns, k] from <see cref="IOperandSource"/>s.
/// A group of 1-4 warps owns a (32·warpsM) x (32·warpsN) tile, each warp 32 x 32 (2 x 4 mma fragments); warpsN is 2
/// when the output is wider than 32 columns, else 1 (the narrow case: a 3-channel conv spends its warps on rows,
/// and a warp skips the 8-column fragments past the last column). Per 32-deep slice the group stages A and B as
/// fp16 pairs in shared memory (rows 20 words apart: 16 of data, 4 of padding, so the fragment loads of a warp hit
/// 32 different banks), two buffers: slice s+1 is staged while slice s is multiplied, one barrier per slice.
/// </summary>
public static class MmaTile
{
    public const int WarpTile = 32, SliceK = 32, MaxWarps = 4;
    /// <summary>Row stride of a staged tile, in 32-bit words and in 16-byte units.</summary>
    public const int RowWords = 20, RowUnits = 5;
    private const int MaxARows = WarpTile * MaxWarps, MaxBRows = WarpTile * 2;

    /// <summary>Warps side by side along the columns.</summary>
    public static int WarpsN(int columns, int warps) => warps >= 2 && columns > WarpTile ? 2 : 1;

    /// <summary>Warps per group (1, 2 or 4: the staging splits rows evenly) on a device whose row kernels use <paramref name="groupSize"/> threads.</summary>
    public static int Warps(int groupSize) => groupSize >= 128 ? 4 : groupSize >= 64 ? 2 : 1;

    /// <summary>The launch for an M x N output: one group per tile, column tiles fastest (neighbours share A rows).</summary>
    public static KernelConfig Launch(int rows, int columns, int warps)
    {
        int warpsN = WarpsN(columns, warps), tileM = WarpTile * (warps / warpsN), tileN = WarpTile * warpsN;
        return new(((columns + tileN - 1) / tileN) * ((rows + tileM - 1) / tileM), warps * 32);
    }

    /// <summary>This group's first output row and column (the grid of <see cref="Launch"/>).</summary>
    public static void GroupOrigin(int columns, out int m0, out int n0)
    {
        int warps = Group.DimX / 32, warpsN = WarpsN(columns, warps), tileN = WarpTile * warpsN;
        int tilesN = (columns + tileN - 1) / tileN;
        n0 = (Grid.IdxX % tilesN) * tileN;
        m0 = (Grid.IdxX / tilesN) * WarpTile * (warps / warpsN);
    }

    /// <summary>
    /// The row and column of this lane's accumulator register R0 of fragment [0][0]; fragment [m][n] register Ri is
    /// at (row + 16m + 8·(i / 2), column + 8n + i % 2).
    /// </summary>
    public static void LaneOrigin(int columns, int m0, int n0, out int row, out int column)
    {
        int warps = Group.DimX / 32, warp = Group.IdxX / 32, lane = Group.IdxX % 32, warpsN = WarpsN(columns, warps);
        row = m0 + WarpTile * (warp / warpsN) + lane / 4;
        column = n0 + WarpTile * (warp % warpsN) + 2 * (lane % 4);
    }

    /// <summary>The group's product over the whole depth; every lane returns its registers of its warp's 32 x 32 tile.</summary>
    public static WarpAccumulators Multiply<TMma, TA, TB>(TA a, TB b, int depth, int m0, int n0, int columns)
        where TMma : struct, IMma where TA : struct, IOperandSource where TB : struct, IOperandSource
    {
        var mma = default(TMma);
        var scratch = mma.Scratch();
        var aTiles = SharedMemory.Allocate<Bits128>(2 * MaxARows * RowUnits);
        var bTiles = SharedMemory.Allocate<Bits128>(2 * MaxBRows * RowUnits);
        var aWords = aTiles.Cast<uint>();
        var bWords = bTiles.Cast<uint>();
        int warps = Group.DimX >> 5, warp = Group.IdxX >> 5, lane = Group.IdxX & 31;
        // warpsN is 1 or 2: shifts, not divisions (ptxas recomputes these inside the slice loop)
        int nShift = WarpsN(columns, warps) - 1, aRows = WarpTile * (warps >> nShift), bRows = WarpTile << nShift;
        int warpRow = WarpTile * (warp >> nShift), warpColumn = WarpTile * (warp & nShift);
        // the word of this lane's first A and B registers in buffer 0 (g = lane / 4 picks the row, t = lane % 4 the pair)
        int aFragment = (warpRow + (lane >> 2)) * RowWords + (lane & 3), bFragment = (warpColumn + (lane >> 2)) * RowWords + (lane & 3);
        int columnFragments = ClampFragments((columns - n0 - warpColumn + 7) / 8);
        int slices = (depth + SliceK - 1) / SliceK;
        var aPart = new StagingPart(aRows);
        var bPart = new StagingPart(bRows);
        Stage(mma, ref a, aTiles, 0, m0, aPart, 0);
        Stage(mma, ref b, bTiles, 0, n0, bPart, 0);
        Group.Barrier();
        var acc = default(WarpAccumulators);
        for (int s = 0; s < slices; s++)
        {
            int buffer = s & 1;
            if (s + 1 < slices)
            {
                Stage(mma, ref a, aTiles, (1 - buffer) * MaxARows, m0, aPart, (s + 1) * SliceK);
                Stage(mma, ref b, bTiles, (1 - buffer) * MaxBRows, n0, bPart, (s + 1) * SliceK);
            }
            if (columnFragments > 0)
            {
                var f = Fragments(aWords, bWords, aFragment + buffer * MaxARows * RowWords, bFragment + buffer * MaxBRows * RowWords);
                mma.Multiply(ref f, ref acc, columnFragments, scratch, s);
            }
            Group.Barrier();
        }
        return acc;
    }

    private static int ClampFragments(int fragments) => fragments < 0 ? 0 : fragments > 4 ? 4 : fragments;

    /// <summary>
    /// This thread's share of staging a tile of <c>rows</c> x 32: <see cref="Units"/> 16-byte units (rows·4 / threads:
    /// 1, 2 or 4) from <see cref="First"/> in row <see cref="Row"/>, the same row in every slice (so a source's per-row
    /// work, a conv's position decode, happens once). Computed once per kernel: it divides by the group size.
    /// </summary>
    private readonly struct StagingPart
    {
        public readonly int Row, First, Units;

        public StagingPart(int rows)
        {
            Units = rows * 4 / Group.DimX;
            int threadsPerRow = 4 / Units;
            Row = Group.IdxX / threadsPerRow;
            First = (Group.IdxX % threadsPerRow) * Units;
        }
    }

    /// <summary>Rows row0.. of the source, k k0..k0+31, into the tile from its row tileRow; the whole group takes part.</summary>
    private static void Stage<TMma, TS>(TMma mma, ref TS source, ArrayView<Bits128> tile, int tileRow, int row0, StagingPart part, int k0)
        where TMma : struct, IMma where TS : struct, IOperandSource
    {
        int r = part.Row, first = part.First;
        source.Seek(row0 + r, k0 + 8 * first);
        for (int unit = first; unit < first + part.Units; unit++)
        {
            Bits128 halves;
            if (source.Packed) halves = source.NextPacked8();
            else
            {
                var v = source.Next8();
                halves = new Bits128 { X = mma.Pack(v.V0, v.V1), Y = mma.Pack(v.V2, v.V3), Z = mma.Pack(v.V4, v.V5), W = mma.Pack(v.V6, v.V7) };
            }
            tile[(tileRow + r) * RowUnits + unit] = halves;
        }
    }

    /// <summary>
    /// The lane's fragments of one slice (PTX fragment layout), from the words of its first registers: A row g, pair t
    /// (<paramref name="top"/>) and B column g, pair t (<paramref name="col"/>); everything else is a constant offset.
    /// </summary>
    private static WarpSlice Fragments(ArrayView<uint> a, ArrayView<uint> b, int top, int col)
    {
        int bottom = top + 8 * RowWords, next = 16 * RowWords;
        return new WarpSlice
        {
            A00 = new AFragment { R0 = a[top], R1 = a[bottom], R2 = a[top + 4], R3 = a[bottom + 4] },
            A01 = new AFragment { R0 = a[top + 8], R1 = a[bottom + 8], R2 = a[top + 12], R3 = a[bottom + 12] },
            A10 = new AFragment { R0 = a[top + next], R1 = a[bottom + next], R2 = a[top + next + 4], R3 = a[bottom + next + 4] },
            A11 = new AFragment { R0 = a[top + next + 8], R1 = a[bottom + next + 8], R2 = a[top + next + 12], R3 = a[bottom + next + 12] },
            B00 = new BFragment { R0 = b[col], R1 = b[col + 4] },
            B01 = new BFragment { R0 = b[col + 8], R1 = b[col + 12] },
            B10 = new BFragment { R0 = b[col + 8 * RowWords], R1 = b[col + 8 * RowWords + 4] },
            B11 = new BFragment { R0 = b[col + 8 * RowWords + 8], R1 = b[col + 8 * RowWords + 12] },
            B20 = new BFragment { R0 = b[col + 16 * RowWords], R1 = b[col + 16 * RowWords + 4] },
            B21 = new BFragment { R0 = b[col + 16 * RowWords + 8], R1 = b[col + 16 * RowWords + 12] },
            B30 = new BFragment { R0 = b[col + 24 * RowWords], R1 = b[col + 24 * RowWords + 4] },
            B31 = new BFragment { R0 = b[col + 24 * RowWords + 8], R1 = b[col + 24 * RowWords + 12] },
        };
    }
}
