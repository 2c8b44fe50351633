using ILGPU;
using ILGPU.Algorithms;
using NbpEngine.Kernels.Device;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Sampling;

/// <summary>
/// MODEL.md §6 on the device with the CPU sampler's exact rules and arithmetic (Runtime/Sampling/RowSampler.cs): the
/// k-th largest value found by a search over order-preserving keys (ties with it survive), the top-p cut as the largest
/// key whose mass from the top exceeds p·total with ties at the cut taken in index order, and the draw walking the
/// survivors in index order with u = CounterRandom.Uniform(seed, step, row). All in fp32: each logit's weight
/// e^(z - max) computed once by Core's SamplingMath with every product rounded on its own (mul.rn), and every mass
/// summed in SamplingMath's fixed order (256 contiguous chunks, each in index order, then the chunks in order).
/// <para>
/// Each row is spread over <see cref="SamplingArgs.Slices"/> groups, each owning MassChunks / Slices whole chunks, in a
/// chain of launches (<see cref="SamplerKernels.Sample"/>): Scale, 7 TopKLevel, Weigh, 7 TopPLevel, Cut, Survivors (all
/// sliced), then Draw (a group a row). Nsight Compute on the H200 found the one-group-a-row kernel this replaces on 16
/// of 132 SMs, each 3% busy, 1.68 ms a K600 step. A launch finishes the decision the previous one's sums allow (every
/// group of a row adds the same numbers in the same order, so all reach the same digit; slice 0 records it in State)
/// and then sums its own chunks for the next. Both searches settle 4 bits a launch (<see cref="DigitSums"/>). The
/// counts are whole numbers, so their order does not matter; each chunk's masses are summed by one thread in index
/// order, as the CPU does, so the slicing changes no bit.
/// </para>
/// </summary>
public static class SamplingKernel
{
    public const int MaxGroupSize = SamplingMath.MassChunks;
    /// <summary>4-bit levels of a 32-bit key.</summary>
    public const int Levels = 32 / DigitSums.Bits;
    /// <summary>Elements of each array a chunk walk stages through shared memory at once (over the chunks of one round).</summary>
    private const int TileCapacity = 2048;

    /// <summary>The key bit a level's digit starts at.</summary>
    private static int Shift(int level) => 32 - DigitSums.Bits * (level + 1);

    /// <summary>Greedy: the argmax of the raw logits, lowest index among equal maxima; one group a row.</summary>
    public static void ArgMax(SamplerViews v, SamplingArgs args)
    {
        var sharedFloat = SharedMemory.Allocate<float>(MaxGroupSize);
        var sharedInt = SharedMemory.Allocate<int>(MaxGroupSize);
        int row = Grid.IdxX, t = Group.IdxX, vocab = args.Vocab;
        var logits = v.Logits.SubView((long)row * vocab, vocab);
        float best = float.NegativeInfinity;
        int bestIndex = int.MaxValue, step = Group.DimX, i = t;
        for (; i + 3 * step < vocab; i += 4 * step) // four loads ahead, taken in index order
        {
            float v0 = logits[i], v1 = logits[i + step], v2 = logits[i + 2 * step], v3 = logits[i + 3 * step];
            if (v0 > best || bestIndex == int.MaxValue) { best = v0; bestIndex = i; }
            if (v1 > best) { best = v1; bestIndex = i + step; }
            if (v2 > best) { best = v2; bestIndex = i + 2 * step; }
            if (v3 > best) { best = v3; bestIndex = i + 3 * step; }
        }
        for (; i < vocab; i += step)
        {
            float x = logits[i];
            if (x > best || bestIndex == int.MaxValue) { best = x; bestIndex = i; }
        }
        sharedFloat[t] = best;
        sharedInt[t] = bestIndex;
        Group.Barrier();
        if (t == 0)
        {
            for (int g = 1; g < Group.DimX; g++)
                if (sharedFloat[g] > best || (sharedFloat[g] == best && sharedInt[g] < bestIndex)) { best = sharedFloat[g]; bestIndex = sharedInt[g]; }
            v.Tokens[row] = bestIndex;
        }
    }

    /// <summary>z = logits / T over the slice, its largest z, and the top-k search's level-0 counts.</summary>
    public static void Scale(SamplerViews v, SamplingArgs args)
    {
        var sharedFloat = SharedMemory.Allocate<float>(MaxGroupSize);
        var counted = SharedMemory.Allocate<float>(DigitSums.Candidates * MaxGroupSize);
        var at = SliceOf(v, args);
        var logits = RowOf(v.Logits, at.Row, args.Vocab);
        float localMax = float.NegativeInfinity;
        int step = Group.DimX, i = at.Low + Group.IdxX;
        for (; i + 3 * step < at.High; i += 4 * step) // four loads ahead: each thread's loop is latency-bound
        {
            float z0 = logits[i] / args.Temperature, z1 = logits[i + step] / args.Temperature;
            float z2 = logits[i + 2 * step] / args.Temperature, z3 = logits[i + 3 * step] / args.Temperature;
            at.Z[i] = z0; at.Z[i + step] = z1; at.Z[i + 2 * step] = z2; at.Z[i + 3 * step] = z3;
            localMax = XMath.Max(XMath.Max(localMax, z0), XMath.Max(z1, XMath.Max(z2, z3)));
        }
        for (; i < at.High; i += step)
        {
            float zi = logits[i] / args.Temperature;
            at.Z[i] = zi;
            localMax = XMath.Max(localMax, zi);
        }
        float max = GroupMax(localMax, sharedFloat);
        if (Group.IdxX == 0)
        {
            at.Sums[SamplerViews.SliceMax + at.Index] = max;
            if (at.Index == 0) at.State[SamplerViews.TopKPrefix] = 0;
        }
        // each thread counts the z it wrote itself (same stride): no barrier needed before reading them back
        if (args.TopKActive) StoreCounts(CountSlice(at, 0u, Shift(0)), counted, at.Sums, 0, at.Index);
    }

    /// <summary>Decides the top-k search's level L - 1 and counts level L over the slice.</summary>
    public static void TopKLevel(SamplerViews v, SamplingArgs args)
    {
        var counted = SharedMemory.Allocate<float>(DigitSums.Candidates * MaxGroupSize);
        var pass = SharedMemory.Allocate<int>(DigitSums.Candidates);
        var at = SliceOf(v, args);
        uint prefix = TopKPrefix(at.Sums, at.State, args, args.Level, at.Index, pass);
        StoreCounts(CountSlice(at, prefix, Shift(args.Level)), counted, at.Sums, args.Level & 1, at.Index);
    }

    /// <summary>This thread's counts of the slice's z for the 15 candidates of (prefix, shift), strided over the group.</summary>
    private static DigitSums CountSlice(RowSlice at, uint prefix, int shift)
    {
        var counts = default(DigitSums);
        int step = Group.DimX, i = at.Low + Group.IdxX;
        for (; i + 3 * step < at.High; i += 4 * step) // four loads in flight (ptxas does not unroll)
        {
            float v0 = at.Z[i], v1 = at.Z[i + step], v2 = at.Z[i + 2 * step], v3 = at.Z[i + 3 * step];
            counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v0), prefix, shift), 1f);
            counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v1), prefix, shift), 1f);
            counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v2), prefix, shift), 1f);
            counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v3), prefix, shift), 1f);
        }
        for (; i < at.High; i += step) counts.Add(DigitSums.Class(DeviceMath.OrderedKey(at.Z[i]), prefix, shift), 1f);
        return counts;
    }

    /// <summary>
    /// The top-k threshold (the search's last level decided), the row's max, every weight of the slice, and per chunk the
    /// top-k survivors' mass and the top-p search's level-0 masses.
    /// </summary>
    public static void Weigh(SamplerViews v, SamplingArgs args)
    {
        var sharedFloat = SharedMemory.Allocate<float>(MaxGroupSize);
        var pass = SharedMemory.Allocate<int>(DigitSums.Candidates);
        var tileZ = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var tileE = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var at = SliceOf(v, args);
        float threshold = args.TopKActive ? DeviceMath.FromOrderedKey(TopKPrefix(at.Sums, at.State, args, Levels, at.Index, pass)) : float.NegativeInfinity;

        float sliceMax = float.NegativeInfinity;
        for (int s = Group.IdxX; s < args.Slices; s += Group.DimX) sliceMax = XMath.Max(sliceMax, at.Sums[SamplerViews.SliceMax + s]);
        float max = GroupMax(sliceMax, sharedFloat);
        if (at.Index == 0 && Group.IdxX == 0)
        {
            at.State[SamplerViews.MaxBits] = (int)Interop.FloatAsInt(max);
            at.State[SamplerViews.TopPPrefix] = 0;
        }

        {
            int step = Group.DimX, i = at.Low + Group.IdxX;
            for (; i + 3 * step < at.High; i += 4 * step)
            {
                float z0 = at.Z[i], z1 = at.Z[i + step], z2 = at.Z[i + 2 * step], z3 = at.Z[i + 3 * step];
                at.E[i] = Weight(z0 - max); at.E[i + step] = Weight(z1 - max); at.E[i + 2 * step] = Weight(z2 - max); at.E[i + 3 * step] = Weight(z3 - max);
            }
            for (; i < at.High; i += step) at.E[i] = Weight(at.Z[i] - max);
        }
        var rule = new ChunkRule
        {
            Threshold = threshold, Levels = args.TopP < 1f, Shift = Shift(0), LevelsAt = SamplerViews.LevelMasses,
            Kept = true, KeptAt = SamplerViews.ChunkTotal, CutValue = float.NegativeInfinity, CutIndex = int.MaxValue,
        };
        SumChunks(at, rule, tileZ, tileE); // its first barrier orders the weights before their reads
    }

    /// <summary>Decides the top-p search's level L - 1 and at.Sums level L's masses over the slice's chunks.</summary>
    public static void TopPLevel(SamplerViews v, SamplingArgs args)
    {
        var pass = SharedMemory.Allocate<int>(DigitSums.Candidates);
        var tileZ = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var tileE = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var at = SliceOf(v, args);
        float target = Target(at.Sums, args, out _);
        uint prefix = TopPPrefix(at.Sums, at.State, args.Level, target, at.Index, pass);
        var rule = new ChunkRule
        {
            Threshold = Threshold(at.State, args), Levels = true, Prefix = prefix, Shift = Shift(args.Level),
            LevelsAt = SamplerViews.LevelMasses + (args.Level & 1) * DigitSums.Candidates * SamplingMath.MassChunks,
        };
        SumChunks(at, rule, tileZ, tileE);
    }

    /// <summary>
    /// The top-p cut (the search's last level decided), and per chunk the mass of the keys above it and the count of at.Z
    /// equal to it. Nothing when p·total rounds to the total (no cut).
    /// </summary>
    public static void Cut(SamplerViews v, SamplingArgs args)
    {
        var pass = SharedMemory.Allocate<int>(DigitSums.Candidates);
        var tileZ = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var tileE = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var at = SliceOf(v, args);
        float target = Target(at.Sums, args, out float total);
        if (!(total > target)) return; // p so close to 1 that p·total rounds to the total: no cut (nothing would pass the search)
        uint key = TopPPrefix(at.Sums, at.State, Levels, target, at.Index, pass);
        var rule = new ChunkRule
        {
            Threshold = Threshold(at.State, args), CutValue = DeviceMath.FromOrderedKey(key), Ties = true,
            Before = key != uint.MaxValue, MinKey = key + 1, // the largest key has nothing above it
        };
        SumChunks(at, rule, tileZ, tileE);
    }

    /// <summary>The entry of the cut value where the ties stop (index order), and per chunk the final survivors' mass.</summary>
    public static void Survivors(SamplerViews v, SamplingArgs args)
    {
        var sharedFloat = SharedMemory.Allocate<float>(MaxGroupSize);
        var sharedInt = SharedMemory.Allocate<int>(2);
        var tileZ = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var tileE = SharedMemory.Allocate<float>(TileCapacity + MaxGroupSize);
        var at = SliceOf(v, args);
        float cutValue = float.NegativeInfinity;
        int cutIndex = int.MaxValue;
        if (args.TopP < 1f)
        {
            float target = Target(at.Sums, args, out float total);
            if (total > target)
            {
                uint key = (uint)at.State[SamplerViews.TopPPrefix + Levels];
                cutValue = DeviceMath.FromOrderedKey(key);
                float before = key == uint.MaxValue ? 0f : OrderedSum(at.Sums.SubView(SamplerViews.ChunkBefore), SamplingMath.MassChunks, 1);
                float max = Interop.IntAsFloat((uint)at.State[SamplerViews.MaxBits]);
                int needed = SamplingMath.TiesNeeded(target, before, Weight(cutValue - max)); // tied entries kept, in index order
                cutIndex = NeededTie(at.Z, at.Sums, args.Vocab, cutValue, needed, sharedFloat, sharedInt, tileZ);
            }
        }
        if (at.Index == 0 && Group.IdxX == 0)
        {
            at.State[SamplerViews.CutIndex] = cutIndex;
            at.State[SamplerViews.CutValueBits] = (int)Interop.FloatAsInt(cutValue);
        }
        var rule = new ChunkRule
        {
            Threshold = Threshold(at.State, args), Kept = true, KeptAt = SamplerViews.ChunkKept, CutValue = cutValue, CutIndex = cutIndex,
        };
        SumChunks(at, rule, tileZ, tileE);
    }

    /// <summary>
    /// The draw, one group a row: inverse CDF over the survivors in index order, whole chunks skipped by their masses,
    /// a chunk walked by its first thread from shared memory.
    /// </summary>
    public static void Draw(SamplerViews v, SamplingArgs args)
    {
        var chunkMass = SharedMemory.Allocate<float>(SamplingMath.MassChunks);
        var walkNext = SharedMemory.Allocate<int>(1);
        var tileZ = SharedMemory.Allocate<float>(TileCapacity);
        var tileE = SharedMemory.Allocate<float>(TileCapacity);
        int row = Grid.IdxX, t = Group.IdxX, vocab = args.Vocab, chunk = SamplingMath.ChunkSize(vocab);
        var sums = RowOf(v.Sums, row, SamplerViews.SumsPerRow);
        var state = RowOf(v.State, row, SamplerViews.StatePerRow);
        var z = RowOf(v.Scaled, row, vocab);
        var e = RowOf(v.Weights, row, vocab);
        float threshold = Threshold(state, args), cutValue = Interop.IntAsFloat((uint)state[SamplerViews.CutValueBits]);
        int cutIndex = state[SamplerViews.CutIndex];
        for (int c = t; c < SamplingMath.MassChunks; c += Group.DimX) chunkMass[c] = sums[SamplerViews.ChunkKept + c];
        Group.Barrier();

        // thread 0's walk; the others stage each chunk it walks (walkNext: the chunk to walk, MassChunks when done)
        float targetMass = 0, running = 0;
        int chosen = -1, lastSurvivor = -1, next = 0;
        if (t == 0)
        {
            float all = OrderedSum(chunkMass, SamplingMath.MassChunks, 1);
            targetMass = default(DeviceMath.RoundedProduct).Mul(CounterRandom.Uniform(args.Seed, args.Step, row), all);
        }
        while (true)
        {
            if (t == 0)
            {
                int c = next;
                for (; c < SamplingMath.MassChunks && running + chunkMass[c] <= targetMass; c++) running += chunkMass[c];
                walkNext[0] = chosen >= 0 ? SamplingMath.MassChunks : c;
            }
            Group.Barrier();
            int walk = walkNext[0];
            Group.Barrier(); // read before thread 0 writes it again
            if (walk >= SamplingMath.MassChunks) break;
            int start = SamplingMath.ChunkStart(walk, chunk, vocab), length = SamplingMath.ChunkEnd(walk, chunk, vocab) - start;
            for (int from = 0; from < length; from += TileCapacity)
            {
                int n = length - from < TileCapacity ? length - from : TileCapacity;
                for (int s = t; s < n; s += Group.DimX)
                {
                    tileZ[s] = z[start + from + s];
                    tileE[s] = e[start + from + s];
                }
                Group.Barrier();
                if (t == 0)
                    for (int o = 0; o < n && chosen < 0; o++)
                    {
                        if (!Survives(tileZ[o], start + from + o, threshold, cutValue, cutIndex)) continue;
                        running += tileE[o];
                        lastSurvivor = start + from + o;
                        if (running > targetMass) chosen = start + from + o;
                    }
                Group.Barrier(); // the tile is consumed
            }
            next = walk + 1;
        }
        if (t == 0)
        {
            if (chosen < 0) // rounding left the target at the very end
                for (int i = vocab - 1; i >= 0 && lastSurvivor < 0; i--)
                    if (Survives(z[i], i, threshold, cutValue, cutIndex)) lastSurvivor = i;
            v.Tokens[row] = chosen >= 0 ? chosen : lastSurvivor;
        }
    }

    /// <summary>A row's slice: which row and slice this group is, its chunks and their logits, and the row's views.</summary>
    private struct RowSlice
    {
        public int Row, Index, FirstChunk, Chunks, Chunk, Low, High, Vocab;
        /// <summary>The row's z, weights and sums (<see cref="SamplerViews.SumsPerRow"/>).</summary>
        public ArrayView<float> Z, E, Sums;
        /// <summary>The row's state (<see cref="SamplerViews.StatePerRow"/>).</summary>
        public ArrayView<int> State;
    }

    private static RowSlice SliceOf(SamplerViews v, SamplingArgs args)
    {
        int row = Grid.IdxX / args.Slices, slice = Grid.IdxX - row * args.Slices, chunks = SamplingMath.MassChunks / args.Slices;
        int chunk = SamplingMath.ChunkSize(args.Vocab), first = slice * chunks;
        return new RowSlice
        {
            Row = row, Index = slice, FirstChunk = first, Chunks = chunks, Chunk = chunk, Vocab = args.Vocab,
            Low = SamplingMath.ChunkStart(first, chunk, args.Vocab), High = SamplingMath.ChunkStart(first + chunks, chunk, args.Vocab),
            Z = RowOf(v.Scaled, row, args.Vocab), E = RowOf(v.Weights, row, args.Vocab), Sums = RowOf(v.Sums, row, SamplerViews.SumsPerRow),
            State = RowOf(v.State, row, SamplerViews.StatePerRow),
        };
    }

    private static ArrayView<T> RowOf<T>(ArrayView<T> rows, int row, int width) where T : unmanaged => rows.SubView((long)row * width, width);

    /// <summary>
    /// The group's counts added up into the slice's slots of the given parity: whole numbers, so in any order, here halving
    /// the threads' columns a barrier at a time with every thread adding.
    /// </summary>
    private static void StoreCounts(DigitSums counts, ArrayView<float> counted, ArrayView<float> sums, int parity, int slice)
    {
        counts.Store(counted, Group.IdxX);
        for (int half = Group.DimX / 2; half >= 1; half /= 2)
        {
            Group.Barrier();
            for (int s = Group.IdxX; s < DigitSums.Candidates * half; s += Group.DimX)
            {
                int d = s / half, g = s - d * half;
                counted[d * SamplingMath.MassChunks + g] += counted[d * SamplingMath.MassChunks + g + half];
            }
        }
        Group.Barrier();
        if (Group.IdxX < DigitSums.Candidates)
            sums[SamplerViews.Counts + (parity * SamplingMath.MassChunks + slice) * DigitSums.Candidates + Group.IdxX] = counted[Group.IdxX * SamplingMath.MassChunks];
    }

    /// <summary>The largest of every thread's <paramref name="value"/>, to every thread (a max is exact in any order).</summary>
    private static float GroupMax(float value, ArrayView<float> shared)
    {
        shared[Group.IdxX] = value;
        for (int half = Group.DimX / 2; half >= 1; half /= 2)
        {
            Group.Barrier();
            if (Group.IdxX < half) shared[Group.IdxX] = XMath.Max(shared[Group.IdxX], shared[Group.IdxX + half]);
        }
        Group.Barrier();
        float max = shared[0];
        Group.Barrier(); // read before the slot is written again
        return max;
    }

    /// <summary>The top-k key with levels below <paramref name="level"/> decided: the last recorded prefix and level - 1's digit.</summary>
    private static uint TopKPrefix(ArrayView<float> sums, ArrayView<int> state, SamplingArgs args, int level, int slice, ArrayView<int> pass)
    {
        var counts = sums.SubView(SamplerViews.Counts + ((level - 1) & 1) * SamplingMath.MassChunks * DigitSums.Candidates);
        int digit = LargestPassing(counts, args.Slices, 1, DigitSums.Candidates, args.TopK, orEqual: true, pass);
        uint prefix = (uint)state[SamplerViews.TopKPrefix + level - 1] | (uint)digit << Shift(level - 1);
        if (slice == 0 && Group.IdxX == 0) state[SamplerViews.TopKPrefix + level] = (int)prefix;
        return prefix;
    }

    /// <summary>The same for the top-p cut: the candidates' masses are summed over the chunks in order.</summary>
    private static uint TopPPrefix(ArrayView<float> sums, ArrayView<int> state, int level, float target, int slice, ArrayView<int> pass)
    {
        var masses = sums.SubView(SamplerViews.LevelMasses + ((level - 1) & 1) * DigitSums.Candidates * SamplingMath.MassChunks);
        int digit = LargestPassing(masses, SamplingMath.MassChunks, SamplingMath.MassChunks, 1, target, orEqual: false, pass);
        uint prefix = (uint)state[SamplerViews.TopPPrefix + level - 1] | (uint)digit << Shift(level - 1);
        if (slice == 0 && Group.IdxX == 0) state[SamplerViews.TopPPrefix + level] = (int)prefix;
        return prefix;
    }

    private static float Threshold(ArrayView<int> state, SamplingArgs args)
        => args.TopKActive ? DeviceMath.FromOrderedKey((uint)state[SamplerViews.TopKPrefix + Levels]) : float.NegativeInfinity;

    /// <summary>p·total, the total being the top-k survivors' chunk masses added in order (by every thread alike).</summary>
    private static float Target(ArrayView<float> sums, SamplingArgs args, out float total)
    {
        total = OrderedSum(sums.SubView(SamplerViews.ChunkTotal), SamplingMath.MassChunks, 1);
        return default(DeviceMath.RoundedProduct).Mul(args.TopP, total); // later subtracted from: never fused
    }

    /// <summary>
    /// values[0], values[stride], ... added in that order from 0, as SamplingMath orders masses: eight loads issued before
    /// their adds (ptxas does not unroll the loop, and a load a step would leave every step waiting on its load).
    /// </summary>
    private static float OrderedSum(ArrayView<float> values, int count, int stride)
    {
        float sum = 0;
        int s = 0;
        for (; s + 8 <= count; s += 8)
        {
            float a0 = values[s * stride], a1 = values[(s + 1) * stride], a2 = values[(s + 2) * stride], a3 = values[(s + 3) * stride];
            float a4 = values[(s + 4) * stride], a5 = values[(s + 5) * stride], a6 = values[(s + 6) * stride], a7 = values[(s + 7) * stride];
            sum += a0; sum += a1; sum += a2; sum += a3; sum += a4; sum += a5; sum += a6; sum += a7;
        }
        for (; s < count; s++) sum += values[s * stride];
        return sum;
    }

    /// <summary>
    /// The index of the <paramref name="needed"/>-th z equal to <paramref name="cutValue"/> in index order, found by
    /// thread 0 from the chunks' tie counts, then in its chunk staged through shared memory; int.MaxValue when there are
    /// fewer (all of them are kept). Every thread gets it.
    /// </summary>
    private static int NeededTie(ArrayView<float> z, ArrayView<float> sums, int vocab, float cutValue, int needed,
        ArrayView<float> sharedFloat, ArrayView<int> sharedInt, ArrayView<float> tile)
    {
        int t = Group.IdxX, chunk = SamplingMath.ChunkSize(vocab);
        for (int c = t; c < SamplingMath.MassChunks; c += Group.DimX) sharedFloat[c] = sums[SamplerViews.ChunkTies + c];
        Group.Barrier();
        if (t == 0)
        {
            int seen = 0, c = 0;
            for (; c < SamplingMath.MassChunks && seen + (int)sharedFloat[c] < needed; c++) seen += (int)sharedFloat[c];
            sharedInt[0] = c;
            sharedInt[1] = seen;
        }
        Group.Barrier();
        int at = sharedInt[0], found = -1;
        if (at < SamplingMath.MassChunks)
        {
            int seen = sharedInt[1], start = SamplingMath.ChunkStart(at, chunk, vocab), length = SamplingMath.ChunkEnd(at, chunk, vocab) - start;
            for (int from = 0; from < length; from += TileCapacity)
            {
                int n = length - from < TileCapacity ? length - from : TileCapacity;
                for (int s = t; s < n; s += Group.DimX) tile[s] = z[start + from + s];
                Group.Barrier();
                if (t == 0)
                    for (int o = 0; o < n && found < 0; o++)
                        if (tile[o] == cutValue && ++seen == needed) found = start + from + o;
                Group.Barrier(); // the tile is consumed
            }
        }
        if (t == 0) sharedInt[0] = found >= 0 ? found : int.MaxValue;
        Group.Barrier();
        int result = sharedInt[0];
        Group.Barrier(); // read before any later write
        return result;
    }

    /// <summary>What <see cref="SumChunks"/> adds up in each chunk, and where it writes the sums (offsets into a row's Sums).</summary>
    private struct ChunkRule
    {
        /// <summary>Only z at or above it take part in Levels and Before (the top-k threshold).</summary>
        public float Threshold;
        /// <summary>The top-p search's 15 candidate masses for (Prefix, Shift), written at LevelsAt + d·MassChunks + c.</summary>
        public bool Levels;
        public uint Prefix;
        public int Shift, LevelsAt;
        /// <summary>The survivors' mass (Survives with CutValue and CutIndex), written at KeptAt + c.</summary>
        public bool Kept;
        public int KeptAt, CutIndex;
        public float CutValue;
        /// <summary>The mass of keys at least MinKey, written at ChunkBefore + c.</summary>
        public bool Before;
        public uint MinKey;
        /// <summary>How many z equal CutValue, written at ChunkTies + c.</summary>
        public bool Ties;
    }

    /// <summary>
    /// Each of the slice's chunks summed by one thread in index order, as SamplingMath orders masses. The chunks are
    /// read a tile at a time through shared memory, every warp's loads contiguous (a thread walking its own chunk in
    /// global memory makes every warp load touch 32 lines); a round takes up to a group's worth of chunks, each a tile
    /// of TileCapacity / chunks elements.
    /// </summary>
    private static void SumChunks(RowSlice at, ChunkRule rule, ArrayView<float> tileZ, ArrayView<float> tileE)
    {
        int t = Group.IdxX;
        var (z, e, sums) = (at.Z, at.E, at.Sums);
        bool weighed = rule.Levels || rule.Kept || rule.Before;
        for (int round = 0; round < at.Chunks; round += Group.DimX)
        {
            int chunks = at.Chunks - round < Group.DimX ? at.Chunks - round : Group.DimX;
            int width = TileCapacity / chunks, stride = width + 1; // an odd stride: the walking threads hit distinct banks
            int mine = at.FirstChunk + round + t;
            int start = SamplingMath.ChunkStart(mine, at.Chunk, at.Vocab), length = t < chunks ? SamplingMath.ChunkEnd(mine, at.Chunk, at.Vocab) - start : 0;
            var sum = default(ChunkSums);
            for (int tile = 0; tile < at.Chunk; tile += width)
            {
                Group.Barrier(); // the previous tile consumed (or, the first time, the caller's writes done)
                for (int s = t; s < chunks * width; s += Group.DimX)
                {
                    int local = s / width, offset = s - local * width, c = at.FirstChunk + round + local;
                    int i = SamplingMath.ChunkStart(c, at.Chunk, at.Vocab) + tile + offset;
                    if (i < SamplingMath.ChunkEnd(c, at.Chunk, at.Vocab))
                    {
                        tileZ[local * stride + offset] = z[i];
                        if (weighed) tileE[local * stride + offset] = e[i];
                    }
                }
                Group.Barrier();
                // this thread's chunk in index order, four elements' shared loads issued before their sums (the walk is
                // the launch's critical path: one thread a chunk, and ptxas does not unroll)
                int n = length - tile < width ? length - tile : width, b = t * stride, index = start + tile, o = 0;
                for (; o + 3 < n; o += 4)
                {
                    float z0 = tileZ[b + o], z1 = tileZ[b + o + 1], z2 = tileZ[b + o + 2], z3 = tileZ[b + o + 3];
                    float e0 = weighed ? tileE[b + o] : 0f, e1 = weighed ? tileE[b + o + 1] : 0f;
                    float e2 = weighed ? tileE[b + o + 2] : 0f, e3 = weighed ? tileE[b + o + 3] : 0f;
                    sum.Take(rule, z0, e0, index + o);
                    sum.Take(rule, z1, e1, index + o + 1);
                    sum.Take(rule, z2, e2, index + o + 2);
                    sum.Take(rule, z3, e3, index + o + 3);
                }
                for (; o < n; o++) sum.Take(rule, tileZ[b + o], weighed ? tileE[b + o] : 0f, index + o);
            }
            if (t < chunks)
            {
                if (rule.Levels) sum.Masses.Store(sums.SubView(rule.LevelsAt), mine);
                if (rule.Kept) sums[rule.KeptAt + mine] = sum.Kept;
                if (rule.Before) sums[SamplerViews.ChunkBefore + mine] = sum.Before;
                if (rule.Ties) sums[SamplerViews.ChunkTies + mine] = sum.Ties;
            }
        }
    }

    /// <summary>One chunk's sums under a <see cref="ChunkRule"/>, each taken in index order.</summary>
    private struct ChunkSums
    {
        public DigitSums Masses;
        public float Kept, Before, Ties;

        public void Take(ChunkRule rule, float value, float weight, int index)
        {
            if (rule.Levels && value >= rule.Threshold) Masses.Add(DigitSums.Class(DeviceMath.OrderedKey(value), rule.Prefix, rule.Shift), weight);
            if (rule.Kept && Survives(value, index, rule.Threshold, rule.CutValue, rule.CutIndex)) Kept += weight;
            if (rule.Before && value >= rule.Threshold && DeviceMath.OrderedKey(value) >= rule.MinKey) Before += weight;
            if (rule.Ties && value == rule.CutValue) Ties += 1f;
        }
    }

    private static bool Survives(float value, int index, float threshold, float cutValue, int cutIndex)
        => value >= threshold && (value > cutValue || (value == cutValue && index <= cutIndex));

    /// <summary>e^x, x ≤ 0, exactly as the CPU sampler's RowSampler.Weight computes it.</summary>
    private static float Weight(float x)
    {
        float mantissa = SamplingMath.ExpParts<DeviceMath.RoundedProduct>(x, out uint scaleBits);
        return mantissa * Interop.IntAsFloat(scaleBits);
    }

    /// <summary>
    /// One level of a 16-ary search: candidate d's sum (d = 1..15) is the <paramref name="slots"/> values at
    /// sums[(d - 1)·candidateStride + s·slotStride] added in slot order by one thread, and the answer is the largest digit
    /// whose sum exceeds <paramref name="bound"/> (or equals it, <paramref name="orEqual"/>); digit 0 is the prefix
    /// itself, which passed the level before. The sums fall as the digit grows, so the passing digits are 0..d.
    /// </summary>
    private static int LargestPassing(ArrayView<float> sums, int slots, int candidateStride, int slotStride, float bound, bool orEqual, ArrayView<int> pass)
    {
        int t = Group.IdxX;
        if (t < DigitSums.Candidates)
        {
            float sum = OrderedSum(sums.SubView(t * candidateStride), slots, slotStride);
            pass[t] = sum > bound || (orEqual && sum == bound) ? 1 : 0;
        }
        Group.Barrier();
        int digit = 0;
        for (int d = 0; d < DigitSums.Candidates; d++) if (pass[d] != 0) digit = d + 1;
        Group.Barrier(); // pass is rewritten by the next level
        return digit;
    }
}
