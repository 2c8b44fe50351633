namespace NbpEngine.Kernels.TensorCores;

// The register fragments of mma.sync.m16n8k16 with fp16 operands (PTX ISA, "Matrix Fragments for
// mma.m16n8k16"). A lane is g = lane / 4, t = lane % 4; a register holds two fp16 values, the lower k in
// its low half.

/// <summary>A 16 (m) x 16 (k) operand: R0 row g, k 2t..2t+1; R1 row g+8; R2 row g, k 2t+8..; R3 row g+8, k 2t+8...</summary>
public struct AFragment
{
    public uint R0, R1, R2, R3;
}

/// <summary>A 16 (k) x 8 (n) operand: R0 k 2t..2t+1 of column g; R1 k 2t+8.. of column g.</summary>
public struct BFragment
{
    public uint R0, R1;
}

/// <summary>A 16 x 8 fp32 accumulator: R0, R1 row g, columns 2t, 2t+1; R2, R3 row g+8.</summary>
public struct CFragment
{
    public float R0, R1, R2, R3;
}

/// <summary>
/// What one warp multiplies per 32-deep k slice: its 32 (m) x 32 (n) tile as 2 m-fragments x 4 n-fragments,
/// each for the two 16-deep halves of the slice (A[m][k], B[n][k]). 32 registers.
/// </summary>
public struct WarpSlice
{
    public AFragment A00, A01, A10, A11;
    public BFragment B00, B01, B10, B11, B20, B21, B30, B31;
}

/// <summary>The warp's 32 x 32 fp32 accumulators, C[m][n] (m: 16-row half, n: 8-column quarter).</summary>
public struct WarpAccumulators
{
    public CFragment C00, C01, C02, C03, C10, C11, C12, C13;
}
