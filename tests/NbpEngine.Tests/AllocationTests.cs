using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

[CollectionDefinition(nameof(AllocationCollection), DisableParallelization = true)]
public sealed class AllocationCollection;

/// <summary>
/// After warm-up, a generation step allocates no managed memory, on the calling thread or on any of
/// the session's worker threads (each counted by its own per-thread counter, so test-runner threads
/// allocating at the same time do not blur the result).
/// </summary>
[Collection(nameof(AllocationCollection))]
public class AllocationTests
{
    [Theory]
    [InlineData("frame_b16", false)]
    [InlineData("frame_b16", true)]
    [InlineData("frame_ntp", true)]
    [InlineData("hybrid", true)]
    public async Task StepsAfterWarmUpAllocateNothing(string name, bool sampled)
    {
        var fixture = Fixtures.Get(name);
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf(fixture.Model));
        using var session = model.CreateSession(new SessionOptions { Threads = 2 });
        var request = FixtureParityTests.Request(fixture) with
        {
            Sampling = sampled ? new SamplingSettings(false, 0.9f, 50, 0.9f) : SamplingSettings.GreedyDecoding,
        };
        var tokens = new int[session.Plan(request).TokenCount];

        // Warm-up: one whole generation (JIT, tiering, first use of every path).
        session.Generate(request, tokens);
        var generator = session.CreateGenerator(request);
        int written = generator.Step(tokens); // the prefill

        long before = GC.GetAllocatedBytesForCurrentThread() + session.WorkerAllocatedBytes!.Value;
        int steps = 0;
        while (!generator.IsComplete)
        {
            written += generator.Step(tokens.AsSpan(written));
            steps++;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() + session.WorkerAllocatedBytes!.Value - before;
        Assert.True(steps > 0);
        Assert.True(allocated == 0, $"{name}: {allocated} bytes allocated over {steps} steps after warm-up");
    }
}
