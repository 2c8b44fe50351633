using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels;
using NbpEngine.Kernels.Sampling;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// The sampler's chain of launches (<see cref="SamplerKernels"/>): which launches a draw makes for each filter, how many
/// groups a row gets, and the group sizes it refuses. The tokens themselves are checked against the CPU sampler by the
/// parity suite's sampling cases, on 1 to 256 groups a row.
/// </summary>
public class SamplerLaunchTests(IlgpuFixture gpu) : IClassFixture<IlgpuFixture>
{
    [Theory]
    [InlineData(16, 132, 32)] // a K600 step on an H200: 512 groups
    [InlineData(1, 132, 256)] // one row: one chunk a group, the most there can be
    [InlineData(512, 132, 1)] // many rows fill the device alone
    [InlineData(3, 2, 2)]
    public void ARowGetsEnoughGroupsToGiveEveryMultiprocessorTwo(int rows, int multiprocessors, int slices)
        => Assert.Equal(slices, SamplerKernels.Slices(rows, multiprocessors));

    [Theory]
    [InlineData(true, 40, 0.9f, "ArgMax")]
    [InlineData(false, 40, 0.9f, "Scale 7xTopKLevel Weigh 7xTopPLevel Cut Survivors Draw")]
    [InlineData(false, 0, 0.9f, "Scale Weigh 7xTopPLevel Cut Survivors Draw")]
    [InlineData(false, 40, 1f, "Scale 7xTopKLevel Weigh Survivors Draw")]
    [InlineData(false, 500, 1f, "Scale Weigh Survivors Draw")] // k = V cuts nothing
    public void ADrawLaunchesOnlyTheSearchesItsFiltersNeed(bool greedy, int topK, float topP, string expected)
    {
        const int rows = 2, vocab = 500;
        var accelerator = gpu.Device.Accelerator;
        var sampler = new SamplerKernels(accelerator);
        using var stream = accelerator.CreateStream();
        using var logits = accelerator.Allocate1D(Enumerable.Range(0, rows * vocab).Select(i => (float)Math.Sin(i)).ToArray());
        using var scaled = accelerator.Allocate1D<float>(rows * vocab);
        using var weights = accelerator.Allocate1D<float>(rows * vocab);
        using var sums = accelerator.Allocate1D<float>(rows * SamplerViews.SumsPerRow);
        using var state = accelerator.Allocate1D<int>(rows * SamplerViews.StatePerRow);
        using var tokens = accelerator.Allocate1D<int>(rows);
        var views = new SamplerViews
        {
            Logits = logits.View, Scaled = scaled.View, Weights = weights.View, Sums = sums.View, State = state.View, Tokens = tokens.View,
        };
        var launched = new List<string>();
        sampler.Sample(stream, rows, 32, accelerator.NumMultiprocessors, views,
            new SamplingArgs { Vocab = vocab, Greedy = greedy ? 1 : 0, Temperature = 1f, TopK = topK, TopP = topP, Seed = 3, Step = 0, Slices = 4 }, launched.Add);
        stream.Synchronize();

        var names = launched.GroupBy(n => n).Select(g => g.Count() == 1 ? g.Key : $"{g.Count()}x{g.Key}");
        Assert.Equal(expected, string.Join(' ', names));
        Assert.All(tokens.GetAsArray1D(), t => Assert.InRange(t, 0, vocab - 1));
    }

    [Theory]
    [InlineData(8, 0)] // too few threads for the 15 candidates of a search level
    [InlineData(48, 0)] // not a power of two
    [InlineData(512, 0)]
    [InlineData(32, 3)] // slices not a power of two
    [InlineData(32, 512)] // more slices than chunks
    public void GroupsAndSlicesItCannotRunAreRefusedBeforeAnyLaunch(int group, int slices)
    {
        var accelerator = gpu.Device.Accelerator;
        var sampler = new SamplerKernels(accelerator);
        using var stream = accelerator.CreateStream();
        var launched = new List<string>();
        var args = new SamplingArgs { Vocab = 500, Temperature = 1f, TopK = 40, TopP = 0.9f, Slices = slices };
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Sample(stream, 2, group, 2, default, args, launched.Add));
        Assert.Empty(launched);
    }
}
