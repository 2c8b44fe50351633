using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NbpEngine.Runtime.Cpu;

/// <summary>How a GEMM result lands in its destination.</summary>
public enum GemmStore
{
    /// <summary>c = a·wᵀ + bias</summary>
    Overwrite,
    /// <summary>c += a·wᵀ + bias (residual add fused into the projection)</summary>
    Accumulate,
}

/// <summary>
/// Single-threaded GEMM core: C[m, n] (=|+=) A[m, k] · W[n, k]ᵀ + bias[n], with W in PyTorch's
/// [out_features, in_features] layout so memory-mapped weights are used as they lie. Register tiles of
/// 4 rows x 4 weight rows accumulate 16 Vector512 dot products along k; each weight row streamed
/// once per 4 activation rows. Callers block W so a chunk stays in L2 (see <see cref="MatMulJob"/>).
/// On AVX2-only machines (<see cref="PackedGemm.Wide"/> false) the tiles are 2 rows x 4 weight rows of Vector256
/// (AVX2 has 16 registers: 8 accumulators, 4 weight loads, 1 row load), two per 4 x 4 (a 4 x 3 tile with 12
/// accumulators measured slower on the AVX2 VM); the lane-partial sums then hold 8 lanes, not 16, so results differ
/// from the AVX-512 ones in the last bits.
/// </summary>
public static unsafe class Gemm
{
    public static void Compute(float* a, int lda, float* w, int ldw, float* c, int ldc, int m, int n, int k, float* bias, GemmStore store)
    {
        if (!PackedGemm.Wide)
        {
            ComputeNarrow(a, lda, w, ldw, c, ldc, m, n, k, bias, store);
            return;
        }
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            int j = 0;
            for (; j + 4 <= n; j += 4) Tile4x4(a + (long)i * lda, lda, w + (long)j * ldw, ldw, c + (long)i * ldc + j, ldc, k, bias == null ? null : bias + j, store);
            for (; j < n; j++)
                for (int r = 0; r < 4; r++) StoreOne(a + (long)(i + r) * lda, w + (long)j * ldw, k, c + (long)(i + r) * ldc + j, bias == null ? 0f : bias[j], store);
        }
        for (; i < m; i++)
        {
            int j = 0;
            for (; j + 4 <= n; j += 4) Tile1x4(a + (long)i * lda, w + (long)j * ldw, ldw, c + (long)i * ldc + j, k, bias == null ? null : bias + j, store);
            for (; j < n; j++) StoreOne(a + (long)i * lda, w + (long)j * ldw, k, c + (long)i * ldc + j, bias == null ? 0f : bias[j], store);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, float value, GemmStore store)
    {
        if (store == GemmStore.Accumulate) *c += value;
        else *c = value;
    }

    private static void StoreOne(float* a, float* w, int k, float* c, float bias, GemmStore store)
        => Store(c, TensorPrimitives.Dot(new ReadOnlySpan<float>(a, k), new ReadOnlySpan<float>(w, k)) + bias, store);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x4(float* a, int lda, float* w, int ldw, float* c, int ldc, int k, float* bias, GemmStore store)
    {
        float* a0 = a, a1 = a + lda, a2 = a + 2L * lda, a3 = a + 3L * lda;
        float* w0 = w, w1 = w + ldw, w2 = w + 2L * ldw, w3 = w + 3L * ldw;
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var vw0 = Vector512.Load(w0 + p); var vw1 = Vector512.Load(w1 + p);
            var vw2 = Vector512.Load(w2 + p); var vw3 = Vector512.Load(w3 + p);
            var va = Vector512.Load(a0 + p);
            c00 = Vector512.FusedMultiplyAdd(va, vw0, c00); c01 = Vector512.FusedMultiplyAdd(va, vw1, c01);
            c02 = Vector512.FusedMultiplyAdd(va, vw2, c02); c03 = Vector512.FusedMultiplyAdd(va, vw3, c03);
            va = Vector512.Load(a1 + p);
            c10 = Vector512.FusedMultiplyAdd(va, vw0, c10); c11 = Vector512.FusedMultiplyAdd(va, vw1, c11);
            c12 = Vector512.FusedMultiplyAdd(va, vw2, c12); c13 = Vector512.FusedMultiplyAdd(va, vw3, c13);
            va = Vector512.Load(a2 + p);
            c20 = Vector512.FusedMultiplyAdd(va, vw0, c20); c21 = Vector512.FusedMultiplyAdd(va, vw1, c21);
            c22 = Vector512.FusedMultiplyAdd(va, vw2, c22); c23 = Vector512.FusedMultiplyAdd(va, vw3, c23);
            va = Vector512.Load(a3 + p);
            c30 = Vector512.FusedMultiplyAdd(va, vw0, c30); c31 = Vector512.FusedMultiplyAdd(va, vw1, c31);
            c32 = Vector512.FusedMultiplyAdd(va, vw2, c32); c33 = Vector512.FusedMultiplyAdd(va, vw3, c33);
        }
        Span<float> s = stackalloc float[16];
        s[0] = Vector512.Sum(c00); s[1] = Vector512.Sum(c01); s[2] = Vector512.Sum(c02); s[3] = Vector512.Sum(c03);
        s[4] = Vector512.Sum(c10); s[5] = Vector512.Sum(c11); s[6] = Vector512.Sum(c12); s[7] = Vector512.Sum(c13);
        s[8] = Vector512.Sum(c20); s[9] = Vector512.Sum(c21); s[10] = Vector512.Sum(c22); s[11] = Vector512.Sum(c23);
        s[12] = Vector512.Sum(c30); s[13] = Vector512.Sum(c31); s[14] = Vector512.Sum(c32); s[15] = Vector512.Sum(c33);
        for (; p < k; p++)
        {
            float x0 = a0[p], x1 = a1[p], x2 = a2[p], x3 = a3[p];
            float y0 = w0[p], y1 = w1[p], y2 = w2[p], y3 = w3[p];
            s[0] += x0 * y0; s[1] += x0 * y1; s[2] += x0 * y2; s[3] += x0 * y3;
            s[4] += x1 * y0; s[5] += x1 * y1; s[6] += x1 * y2; s[7] += x1 * y3;
            s[8] += x2 * y0; s[9] += x2 * y1; s[10] += x2 * y2; s[11] += x2 * y3;
            s[12] += x3 * y0; s[13] += x3 * y1; s[14] += x3 * y2; s[15] += x3 * y3;
        }
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++)
                Store(c + (long)r * ldc + q, s[r * 4 + q] + (bias == null ? 0f : bias[q]), store);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x4(float* a, float* w, int ldw, float* c, int k, float* bias, GemmStore store)
    {
        float* w0 = w, w1 = w + ldw, w2 = w + 2L * ldw, w3 = w + 3L * ldw;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var va = Vector512.Load(a + p);
            c0 = Vector512.FusedMultiplyAdd(va, Vector512.Load(w0 + p), c0);
            c1 = Vector512.FusedMultiplyAdd(va, Vector512.Load(w1 + p), c1);
            c2 = Vector512.FusedMultiplyAdd(va, Vector512.Load(w2 + p), c2);
            c3 = Vector512.FusedMultiplyAdd(va, Vector512.Load(w3 + p), c3);
        }
        float s0 = Vector512.Sum(c0), s1 = Vector512.Sum(c1), s2 = Vector512.Sum(c2), s3 = Vector512.Sum(c3);
        FinishRow(a, w0, w1, w2, w3, p, k, s0, s1, s2, s3, c, bias, store);
    }

    /// <summary>The AVX2 form of <see cref="Compute"/>: pairs of 2 x 4 tiles, a last pair in one, single rows in 1 x 4 tiles, dot products for the tails.</summary>
    private static void ComputeNarrow(float* a, int lda, float* w, int ldw, float* c, int ldc, int m, int n, int k, float* bias, GemmStore store)
    {
        int i = 0;
        for (; i + 4 <= m; i += 4)
        {
            int j = 0;
            for (; j + 4 <= n; j += 4)
            {
                Tile2x4(a + (long)i * lda, lda, w + (long)j * ldw, ldw, c + (long)i * ldc + j, ldc, k, bias == null ? null : bias + j, store);
                Tile2x4(a + (long)(i + 2) * lda, lda, w + (long)j * ldw, ldw, c + (long)(i + 2) * ldc + j, ldc, k, bias == null ? null : bias + j, store);
            }
            for (; j < n; j++)
                for (int r = 0; r < 4; r++) StoreOne(a + (long)(i + r) * lda, w + (long)j * ldw, k, c + (long)(i + r) * ldc + j, bias == null ? 0f : bias[j], store);
        }
        if (i + 2 <= m)
        {
            // a pair (a guided NTP step: the request and its unconditional stream) streams the weights once, not twice;
            // Tile2x4 gives each row the bits Tile1x4Narrow would
            int j = 0;
            for (; j + 4 <= n; j += 4)
                Tile2x4(a + (long)i * lda, lda, w + (long)j * ldw, ldw, c + (long)i * ldc + j, ldc, k, bias == null ? null : bias + j, store);
            for (; j < n; j++)
                for (int r = 0; r < 2; r++) StoreOne(a + (long)(i + r) * lda, w + (long)j * ldw, k, c + (long)(i + r) * ldc + j, bias == null ? 0f : bias[j], store);
            i += 2;
        }
        for (; i < m; i++)
        {
            int j = 0;
            for (; j + 4 <= n; j += 4) Tile1x4Narrow(a + (long)i * lda, w + (long)j * ldw, ldw, c + (long)i * ldc + j, k, bias == null ? null : bias + j, store);
            for (; j < n; j++) StoreOne(a + (long)i * lda, w + (long)j * ldw, k, c + (long)i * ldc + j, bias == null ? 0f : bias[j], store);
        }
    }

    /// <summary>AVX2: 2 rows x 4 weight rows, 8 Vector256 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile2x4(float* a, int lda, float* w, int ldw, float* c, int ldc, int k, float* bias, GemmStore store)
    {
        float* a0 = a, a1 = a + lda;
        float* w0 = w, w1 = w + ldw, w2 = w + 2L * ldw, w3 = w + 3L * ldw;
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector256<float> c10 = default, c11 = default, c12 = default, c13 = default;
        int p = 0;
        for (; p + 8 <= k; p += 8)
        {
            var vw0 = Vector256.Load(w0 + p); var vw1 = Vector256.Load(w1 + p);
            var vw2 = Vector256.Load(w2 + p); var vw3 = Vector256.Load(w3 + p);
            var va = Vector256.Load(a0 + p);
            c00 = Vector256.FusedMultiplyAdd(va, vw0, c00); c01 = Vector256.FusedMultiplyAdd(va, vw1, c01);
            c02 = Vector256.FusedMultiplyAdd(va, vw2, c02); c03 = Vector256.FusedMultiplyAdd(va, vw3, c03);
            va = Vector256.Load(a1 + p);
            c10 = Vector256.FusedMultiplyAdd(va, vw0, c10); c11 = Vector256.FusedMultiplyAdd(va, vw1, c11);
            c12 = Vector256.FusedMultiplyAdd(va, vw2, c12); c13 = Vector256.FusedMultiplyAdd(va, vw3, c13);
        }
        Span<float> s = stackalloc float[8];
        s[0] = Vector256.Sum(c00); s[1] = Vector256.Sum(c01); s[2] = Vector256.Sum(c02); s[3] = Vector256.Sum(c03);
        s[4] = Vector256.Sum(c10); s[5] = Vector256.Sum(c11); s[6] = Vector256.Sum(c12); s[7] = Vector256.Sum(c13);
        for (; p < k; p++)
        {
            float x0 = a0[p], x1 = a1[p];
            float y0 = w0[p], y1 = w1[p], y2 = w2[p], y3 = w3[p];
            s[0] += x0 * y0; s[1] += x0 * y1; s[2] += x0 * y2; s[3] += x0 * y3;
            s[4] += x1 * y0; s[5] += x1 * y1; s[6] += x1 * y2; s[7] += x1 * y3;
        }
        for (int r = 0; r < 2; r++)
            for (int q = 0; q < 4; q++)
                Store(c + (long)r * ldc + q, s[r * 4 + q] + (bias == null ? 0f : bias[q]), store);
    }

    /// <summary>AVX2: 1 row x 4 weight rows, 4 Vector256 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x4Narrow(float* a, float* w, int ldw, float* c, int k, float* bias, GemmStore store)
    {
        float* w0 = w, w1 = w + ldw, w2 = w + 2L * ldw, w3 = w + 3L * ldw;
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
        int p = 0;
        for (; p + 8 <= k; p += 8)
        {
            var va = Vector256.Load(a + p);
            c0 = Vector256.FusedMultiplyAdd(va, Vector256.Load(w0 + p), c0);
            c1 = Vector256.FusedMultiplyAdd(va, Vector256.Load(w1 + p), c1);
            c2 = Vector256.FusedMultiplyAdd(va, Vector256.Load(w2 + p), c2);
            c3 = Vector256.FusedMultiplyAdd(va, Vector256.Load(w3 + p), c3);
        }
        float s0 = Vector256.Sum(c0), s1 = Vector256.Sum(c1), s2 = Vector256.Sum(c2), s3 = Vector256.Sum(c3);
        FinishRow(a, w0, w1, w2, w3, p, k, s0, s1, s2, s3, c, bias, store);
    }

    /// <summary>The scalar tail (k past the last whole vector) and the store of a 1 x 4 tile, whatever its vector width.</summary>
    private static void FinishRow(float* a, float* w0, float* w1, float* w2, float* w3, int p, int k, float s0, float s1, float s2, float s3,
        float* c, float* bias, GemmStore store)
    {
        for (; p < k; p++)
        {
            float x = a[p];
            s0 += x * w0[p]; s1 += x * w1[p]; s2 += x * w2[p]; s3 += x * w3[p];
        }
        Store(c, s0 + (bias == null ? 0f : bias[0]), store);
        Store(c + 1, s1 + (bias == null ? 0f : bias[1]), store);
        Store(c + 2, s2 + (bias == null ? 0f : bias[2]), store);
        Store(c + 3, s3 + (bias == null ? 0f : bias[3]), store);
    }
}
