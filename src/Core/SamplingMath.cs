namespace NbpEngine.Core;

/// <summary>
/// A product rounded on its own. ptxas may contract a plain multiply and the add that follows into one fma, which rounds
/// once, so a formula meant to give the same bits on the CPU and the GPU multiplies through this: plain on the CPU (the
/// .NET JIT never contracts), <c>mul.rn.f32</c> in kernels (Kernels' DeviceMath.RoundedProduct).
/// </summary>
public interface IRoundedProduct
{
    float Mul(float a, float b);
}

/// <summary>The CPU's product: C# never fuses it with an add.</summary>
public struct PlainProduct : IRoundedProduct
{
    public readonly float Mul(float a, float b) => a * b;
}

/// <summary>
/// What the CPU sampler and the sampling kernel compute the same way, so that identical logits and seeds give identical
/// tokens on both, bit for bit, in fp32 (no fp64 in the kernel: issue 12).
/// <para>exp: e^x = 2^n · e^r with n = round(x·log2 e) and r = x - n·ln 2 (Cody-Waite: ln 2 split in a part whose
/// product with n is exact and a small remainder), |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial (error below
/// 1e-8 before rounding; measured within two ulps over [-87, 0]). The caller builds 2^n from <see cref="ExpParts"/>'
/// scale bits with its own bit cast (BitConverter on the CPU, ILGPU's Interop in kernels), as <see cref="SortableFloat"/>
/// does. Replaces the double-precision exp that cost the GPU sampler ~4,000 instructions per call.</para>
/// <para>Masses (sums of weights over a set of logits): the row is cut into <see cref="MassChunks"/> contiguous chunks
/// of <see cref="ChunkSize"/> logits; each chunk's members are added in index order from 0, then the chunk sums in chunk
/// order from 0, all in fp32. The kernel gives each thread whole chunks; the CPU adds the same numbers in the same
/// order, skipping non-members (adding +0 changes nothing).</para>
/// </summary>
public static class SamplingMath
{
    /// <summary>Chunks a row's masses are summed in (the sampling kernel's largest group: one chunk per thread).</summary>
    public const int MassChunks = 256;

    /// <summary>Logits per chunk (the last chunks may be shorter or empty).</summary>
    public static int ChunkSize(int vocab) => (vocab + MassChunks - 1) / MassChunks;

    /// <summary>The first logit of chunk <paramref name="c"/> of <paramref name="size"/> logits (the vocabulary's end for an empty chunk).</summary>
    public static int ChunkStart(int c, int size, int vocab) => Math.Min(c * size, vocab);

    /// <summary>One past the last logit of chunk <paramref name="c"/>.</summary>
    public static int ChunkEnd(int c, int size, int vocab) => Math.Min(c * size + size, vocab);

    /// <summary>
    /// How many of the entries tied at the top-p cut value are kept, in index order: enough that the mass from the top
    /// passes <paramref name="target"/>, given the mass <paramref name="before"/> of the larger values and the weight
    /// <paramref name="each"/> of one tied entry (target ≥ before, each > 0). Past int's range: all of them.
    /// </summary>
    public static int TiesNeeded(float target, float before, float each)
    {
        float whole = (target - before) / each; // ≥ 0: the conversion truncates, which is the floor
        return whole >= 2e9f ? int.MaxValue : (int)whole + 1;
    }

    private const float Log2E = 1.44269504088896341f;
    // ln 2 = Ln2High + Ln2Low; Ln2High has 16 significant bits, so n·Ln2High is exact for |n| < 2^8
    private const float Ln2High = 0.693145751953125f, Ln2Low = 1.42860682030941723e-06f;
    private const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    /// <summary>
    /// For x ≤ 0 (a logit minus the row's maximum): e^r, and in <paramref name="scaleBits"/> the fp32 bits of 2^n
    /// (0 when e^x is below the smallest normal float, so the weight is 0). Every product through <typeparamref name="TP"/>.
    /// </summary>
    public static float ExpParts<TP>(float x, out uint scaleBits) where TP : struct, IRoundedProduct
    {
        TP p = default;
        float t = p.Mul(x, Log2E);
        if (!(t > -126f))
        {
            scaleBits = 0;
            return 0f;
        }
        int n = (int)(t - 0.5f); // t ≤ 0: rounds to nearest (ties away from zero)
        float r = x - p.Mul(n, Ln2High) - p.Mul(n, Ln2Low);
        scaleBits = (uint)(n + 127) << 23;
        return 1f + p.Mul(r, 1f + p.Mul(r, C2 + p.Mul(r, C3 + p.Mul(r, C4 + p.Mul(r, C5 + p.Mul(r, C6 + p.Mul(r, C7)))))));
    }
}
