using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>The embedding API under misuse: clear exceptions, never freed memory touched, never wrong tokens.</summary>
public class ApiMisuseTests
{
    private static Task<NbpModel> Load() => NbpModel.LoadAsync(Fixtures.PathOf("frame_model.safetensors"));
    private static GenerationRequest Request(bool greedy = true) => new()
    {
        Prompt = Fixtures.Tokens("frame_prompt.txt"), BlockSize = 16, Steps = 12, Sampling = greedy ? SamplingSettingsGreedy : new(false, 1f, 50, 0.9f), Seed = 3,
    };
    private static readonly NbpEngine.Runtime.Sampling.SamplingSettings SamplingSettingsGreedy = NbpEngine.Runtime.Sampling.SamplingSettings.GreedyDecoding;

    [Fact]
    public async Task DisposingAModelUnderALiveSessionThrowsAndFreesNothing()
    {
        var model = await Load();
        var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        var e = Assert.Throws<InvalidOperationException>(model.Dispose);
        Assert.Contains("1 session(s)", e.Message);
        var tokens = new int[192];
        session.Generate(Request(), tokens); // the weights are still there
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), tokens);
        session.Dispose();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.CreateSession());
    }

    /// <summary>CUDA graphs asked of a backend that has none: a clear error when the session is created, and the model stays usable.</summary>
    [Fact]
    public async Task CudaGraphsOffCudaThrowAtSessionCreation()
    {
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf("frame_model.safetensors"), new NbpModelOptions { DeviceBackends = NbpEngine.Kernels.Backend.IlgpuBackends.Provider });
        foreach (var backend in new[] { BackendKind.Cpu, BackendKind.IlgpuCpu })
        {
            var e = Assert.Throws<BackendUnavailableException>(() => model.CreateSession(new SessionOptions { Backend = backend, Threads = 2, CudaGraphs = true }));
            Assert.Contains("CUDA graphs need the CUDA backend", e.Message);
        }
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 }); // the failed ones were closed
        var tokens = new int[192];
        session.Generate(Request(), tokens);
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), tokens);
    }

    /// <summary>
    /// Tensor-core steps asked of the CPU backend: a clear error at session creation. On ILGPU's CPU accelerator (the
    /// mma emulation) a session takes them, and its greedy frame tokens from the fixture prompt stay the fixture's for
    /// the first block (fp16 rows move a logit by ~1e-4 of the range; later blocks may meet a near tie).
    /// </summary>
    [Fact]
    public async Task TensorCoreStepsOffIlgpuThrowAtSessionCreation()
    {
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf("frame_model.safetensors"), new NbpModelOptions { DeviceBackends = NbpEngine.Kernels.Backend.IlgpuBackends.Provider });
        var e = Assert.Throws<BackendUnavailableException>(() => model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2, TensorCoreSteps = true }));
        Assert.Contains("tensor-core steps need an ILGPU backend", e.Message);
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.IlgpuCpu, TensorCoreSteps = true });
        var tokens = new int[32];
        session.Generate(Request() with { Steps = 2 }, tokens);
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt").Take(32), tokens);
    }

    [Fact]
    public async Task EveryCallOnADisposedSessionThrowsObjectDisposed()
    {
        using var model = await Load();
        var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        var generator = session.CreateGenerator(Request());
        session.Dispose();
        session.Dispose(); // twice is fine
        Assert.Throws<ObjectDisposedException>(() => session.CreateGenerator(Request()));
        Assert.Throws<ObjectDisposedException>(() => session.Generate(Request(), new int[192]));
        Assert.Throws<ObjectDisposedException>(() => session.CopyLogits(new float[16 * 500]));
        Assert.Throws<ObjectDisposedException>(() => generator.Step(new int[16]));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(Request())) { }
        });
    }

    [Fact]
    public async Task ASecondConcurrentGenerationOnOneSessionThrowsAtOnce()
    {
        using var model = await Load();
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        await using var first = session.GenerateAsync(Request()).GetAsyncEnumerator();
        Assert.True(await first.MoveNextAsync());
        await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(Request())) { }
        });
        Assert.Throws<InvalidOperationException>(() => session.Generate(Request(), new int[192]));
        var tokens = new List<int>(first.Current.Tokens);
        while (await first.MoveNextAsync()) tokens.AddRange(first.Current.Tokens);
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), tokens); // the first one was not disturbed
    }

    [Fact]
    public async Task AStaleGeneratorThrowsInsteadOfComputing()
    {
        using var model = await Load();
        using var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        var old = session.CreateGenerator(Request());
        old.Step(new int[16]);
        var fresh = session.CreateGenerator(Request());
        var e = Assert.Throws<InvalidOperationException>(() => old.Step(new int[16]));
        Assert.Contains("stale", e.Message);
        var tokens = new int[192];
        for (int at = 0; !fresh.IsComplete;) at += fresh.Step(tokens.AsSpan(at));
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), tokens);
    }

    [Fact]
    public async Task DisposingASessionMidStreamEndsTheStream()
    {
        using var model = await Load();
        var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
        int blocks = 0;
        await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(Request(greedy: false)))
                if (++blocks == 2) await Task.Run(session.Dispose); // from another thread, between two steps
        });
        Assert.Equal(2, blocks);
    }

    /// <summary>Dispose racing a step in flight: the step finishes (or never starts) before the cache is freed; without the gate this was an access violation.</summary>
    [Fact]
    public async Task DisposingASessionDuringAStepNeverFreesMemoryInUse()
    {
        using var model = await Load();
        for (int trial = 0; trial < 20; trial++)
        {
            var session = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 2 });
            var generator = session.CreateGenerator(Request(greedy: false));
            var run = Task.Run(() =>
            {
                var tokens = new int[16];
                try
                {
                    while (!generator.IsComplete) generator.Step(tokens);
                    return "complete";
                }
                catch (ObjectDisposedException)
                {
                    return "disposed";
                }
            });
            Thread.Sleep(trial % 4);
            session.Dispose();
            Assert.Contains(await run, new[] { "complete", "disposed" });
        }
    }

    [Fact]
    public async Task CancelledStreamsLeaveTheSessionReusableAndSessionsRunConcurrently()
    {
        using var model = await Load();
        using var a = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 1 });
        using var b = model.CreateSession(new SessionOptions { Backend = BackendKind.Cpu, Threads = 1 });
        using (var cts = new CancellationTokenSource())
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var block in a.GenerateAsync(Request(), null, cts.Token))
                    if (block.Step == 3) cts.Cancel();
            });
        }
        var results = await Task.WhenAll(new[] { a, b }.Select(s => Task.Run(() =>
        {
            var tokens = new int[192];
            s.Generate(Request(), tokens);
            return tokens;
        })));
        Assert.All(results, tokens => Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), tokens));
    }
}
