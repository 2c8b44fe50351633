using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Core;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

public class SamplerTests
{
    private const int Draws = 40_000;

    /// <summary>The filtered distribution of MODEL.md §6 computed plainly (LINQ, doubles), independent of RowSampler.</summary>
    private static double[] Expected(float[] logits, SamplingSettings s)
    {
        var z = logits.Select(l => (double)(l / s.Temperature)).ToArray();
        var keep = Enumerable.Repeat(true, z.Length).ToArray();
        if (s.TopK > 0 && s.TopK < z.Length)
        {
            double thr = z.OrderByDescending(v => v).ElementAt(s.TopK - 1);
            for (int i = 0; i < z.Length; i++) keep[i] = z[i] >= thr;
        }
        if (s.TopP < 1)
        {
            var order = Enumerable.Range(0, z.Length).Where(i => keep[i]).OrderByDescending(i => z[i]).ThenBy(i => i).ToList();
            double total = order.Sum(i => Math.Exp(z[i]));
            double cum = 0;
            bool past = false;
            foreach (int i in order)
            {
                if (past) { keep[i] = false; continue; }
                cum += Math.Exp(z[i]) / total;
                if (cum > s.TopP) past = true; // this one is the first past p: kept
            }
        }
        var p = z.Select((v, i) => keep[i] ? Math.Exp(v) : 0).ToArray();
        double sum = p.Sum();
        return p.Select(v => v / sum).ToArray();
    }

    private static int[] Histogram(float[] logits, SamplingSettings s, ulong seed)
    {
        var counts = new int[logits.Length];
        var scaled = new float[logits.Length];
        var keys = new ulong[logits.Length];
        for (int d = 0; d < Draws; d++)
            counts[RowSampler.Sample(logits, s, CounterRandom.Uniform(seed, d, 3), scaled, keys)]++;
        return counts;
    }

    /// <summary>Chi-square goodness of fit at significance 1e-6 (Wilson–Hilferty quantile), and no draw outside the support.</summary>
    private static void AssertMatches(int[] counts, double[] expected, string what)
    {
        double chi = 0;
        int dof = -1;
        for (int i = 0; i < counts.Length; i++)
        {
            if (expected[i] == 0)
            {
                Assert.True(counts[i] == 0, $"{what}: token {i} was filtered out but drawn {counts[i]} times");
                continue;
            }
            double e = expected[i] * Draws;
            chi += (counts[i] - e) * (counts[i] - e) / e;
            dof++;
        }
        if (dof == 0) return;
        const double z = 4.753; // one-sided normal quantile for 1e-6
        double critical = dof * Math.Pow(1 - 2.0 / (9 * dof) + z * Math.Sqrt(2.0 / (9 * dof)), 3);
        Assert.True(chi < critical, $"{what}: chi-square {chi:F1} with {dof} dof exceeds {critical:F1}; counts [{string.Join(", ", counts)}]");
    }

    private static readonly float[] Logits = [1.5f, -0.3f, 2.0f, 0.7f, 2.0f, -1.2f, 0.1f, 2.0f, 1.1f, -0.5f, 0.9f, 0.4f];

    [Theory]
    [InlineData(1.0f, 0, 1.0f)]    // plain softmax
    [InlineData(0.6f, 0, 1.0f)]    // temperature sharpens
    [InlineData(2.5f, 0, 1.0f)]    // temperature flattens
    [InlineData(1.0f, 2, 1.0f)]    // top-k = 2 where the 2nd value ties with a 3rd: 3 survive
    [InlineData(1.0f, 5, 1.0f)]
    [InlineData(1.0f, 0, 0.5f)]    // top-p alone
    [InlineData(1.0f, 0, 0.9f)]
    [InlineData(1.3f, 6, 0.75f)]   // all three
    public void SampledFrequenciesMatchTheFilteredDistribution(float temperature, int topK, float topP)
    {
        var s = new SamplingSettings(false, temperature, topK, topP);
        AssertMatches(Histogram(Logits, s, 7), Expected(Logits, s), s.ToString());
    }

    [Fact]
    public void TheSamplersExpIsWithinTwoUlpOfTheTrueValueAndZeroBelowTheNormalRange()
    {
        // every logit weight e^(z - max) on both backends comes from Core's SamplingMath: check it against double exp
        double worst = 0;
        for (float x = 0f; x > -87f; x -= 0.000731f)
        {
            double exact = Math.Exp(x), found = RowSampler.Weight(x);
            worst = Math.Max(worst, Math.Abs(found - exact) / exact);
        }
        Assert.True(worst < 2.4e-7, $"worst relative error {worst:E2}");
        Assert.Equal(1.0, RowSampler.Weight(0f));
        Assert.Equal(0.0, RowSampler.Weight(-88f));
        Assert.Equal(0.0, RowSampler.Weight(float.NegativeInfinity));
    }

    [Fact]
    public void TopKKeepsEveryTieOfTheKthValue()
    {
        // Top-2 of these logits: threshold 2.0, held by indices 2, 4, 7, so three tokens survive.
        var p = Expected(Logits, new SamplingSettings(false, 1f, 2, 1f));
        Assert.Equal(new[] { 2, 4, 7 }, p.Select((v, i) => (v, i)).Where(t => t.v > 0).Select(t => t.i));
        var counts = Histogram(Logits, new SamplingSettings(false, 1f, 2, 1f), 11);
        Assert.All(new[] { 2, 4, 7 }, i => Assert.InRange(counts[i], Draws / 3 - 1000, Draws / 3 + 1000));
    }

    [Fact]
    public void TopPKeepsTheFirstEntryPastP()
    {
        // probabilities 0.5, 0.3, 0.15, 0.05: cumulative 0.5, 0.8, ... With p = 0.6 the shifted mask keeps the first two.
        float[] logits = [MathF.Log(0.15f), MathF.Log(0.5f), MathF.Log(0.05f), MathF.Log(0.3f)];
        var counts = Histogram(logits, new SamplingSettings(false, 1f, 0, 0.6f), 5);
        Assert.Equal(0, counts[0]);
        Assert.Equal(0, counts[2]);
        Assert.InRange(counts[1] / (double)Draws, 0.625 - 0.01, 0.625 + 0.01); // 0.5 / 0.8
        // With p below the top probability only the top token survives (it always does).
        counts = Histogram(logits, new SamplingSettings(false, 1f, 0, 0.2f), 5);
        Assert.Equal(Draws, counts[1]);
    }

    [Fact]
    public void GreedyIsArgmaxWithLowestIndexOnTies()
    {
        Assert.Equal(2, RowSampler.ArgMax(Logits));
        Assert.Equal(2, RowSampler.Sample(Logits, SamplingSettings.GreedyDecoding, 0.99f, new float[12], new ulong[12]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(17)]
    [InlineData(500)]
    public void KthLargestAgreesWithSorting(int length)
    {
        var rng = new Random(length);
        var values = Enumerable.Range(0, length).Select(_ => (float)Math.Round(rng.NextDouble() * 10, 1)).ToArray(); // many ties
        var sorted = values.OrderByDescending(v => v).ToArray();
        foreach (int k in new[] { 1, length / 2 + 1, length })
            Assert.Equal(sorted[k - 1], Select.KthLargest(values.ToArray(), k));
    }

    [Fact]
    public void UniformIsAFunctionOfSeedStepAndRowOnly()
    {
        Assert.Equal(CounterRandom.Uniform(42, 3, 5), CounterRandom.Uniform(42, 3, 5));
        Assert.NotEqual(CounterRandom.Uniform(42, 3, 5), CounterRandom.Uniform(42, 3, 6));
        Assert.NotEqual(CounterRandom.Uniform(42, 3, 5), CounterRandom.Uniform(43, 3, 5));
        double mean = Enumerable.Range(0, 100_000).Average(i => CounterRandom.Uniform(1, i, 0));
        Assert.InRange(mean, 0.497, 0.503);
    }

    [Fact]
    public async Task SameSeedGivesTheSameTokensAndAnotherSeedDoesNot()
    {
        var fixture = Fixtures.Get("frame_b16");
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf(fixture.Model));
        int[] Run(ulong seed, int threads)
        {
            using var session = model.CreateSession(new SessionOptions { Threads = threads });
            var request = FixtureParityTests.Request(fixture) with { Sampling = new SamplingSettings(false, 1f, 100, 0.9f), Seed = seed };
            var tokens = new int[session.Plan(request).TokenCount];
            session.Generate(request, tokens);
            return tokens;
        }
        var first = Run(1234, 2);
        Assert.Equal(first, Run(1234, 2));
        Assert.Equal(first, Run(1234, 1)); // thread count does not change the stream
        Assert.NotEqual(first, Run(1235, 2));
    }
}
