using NbpEngine.Kernels.Backend;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>
/// Several sequences per step (issue 16): a request's tokens from a batch session equal the tokens it gets alone, whatever
/// shares its steps (batch invariance, greedy and sampled, prompts of different lengths, NBP, B = 4, NTP and hybrid mixed),
/// the batch shares its forward calls, and bad requests are refused before any compute.
/// </summary>
public class BatchSessionTests
{
    private static readonly int[] FramePrompt = Fixtures.Tokens("frame_prompt.txt");

    /// <summary>Frame-model requests that put rows of both CPU GEMM kernels (packed: 16-row blocks and prompts; dot: 1 and 4 rows) in one step.</summary>
    private static GenerationRequest[] FrameRequests() =>
    [
        FixtureParityTests.Request(Fixtures.Get("frame_b16")),
        new() { Prompt = FramePrompt, Steps = 4, Seed = 5, Sampling = new SamplingSettings(false, 0.8f, 50, 1f) },
        new() { Prompt = FramePrompt, BlockSize = 1, Steps = 20, Seed = 9, Sampling = SamplingSettings.Published },
        new() { Prompt = FramePrompt, BlockSize = 4, Steps = 8 },
        new() { Prompt = FramePrompt[..32], Steps = 5, Seed = 3, Sampling = new SamplingSettings(false, 1f, 0, 0.9f) },
        new() { Prompt = FramePrompt, Steps = 4, Seed = 6, Sampling = new SamplingSettings(false, 0.8f, 50, 1f) },
    ];

    private static GenerationRequest[] HybridRequests()
    {
        var fixture = FixtureParityTests.Request(Fixtures.Get("hybrid"));
        return
        [
            fixture,
            fixture with { Seed = 11, Sampling = SamplingSettings.Published },
            fixture with { Seed = 12, Sampling = new SamplingSettings(false, 1.2f, 30, 1f), Steps = fixture.Steps - 3 },
        ];
    }

    private static async Task<NbpModel> Load(string model) =>
        await NbpModel.LoadAsync(Fixtures.PathOf(model), new NbpModelOptions { DeviceBackends = IlgpuBackends.Provider });

    private static int[][] Alone(NbpModel model, BackendKind backend, GenerationRequest[] requests)
    {
        using var session = model.CreateSession(new SessionOptions { Backend = backend, Threads = 2 });
        return requests.Select(r =>
        {
            var tokens = new int[session.Plan(r).TokenCount];
            session.Generate(r, tokens);
            return tokens;
        }).ToArray();
    }

    private static int[][] Batched(NbpModel model, BackendKind backend, GenerationRequest[] requests, int slots, out long forwardCalls)
    {
        using var batch = model.CreateBatchSession(slots, new SessionOptions { Backend = backend, Threads = 2 });
        var tokens = new int[requests.Length][];
        foreach (var result in batch.Generate(requests))
        {
            Assert.Null(result.Error);
            Assert.Null(tokens[result.Index]);
            tokens[result.Index] = result.Tokens!;
        }
        forwardCalls = batch.ForwardCalls;
        return tokens;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(6)]
    public async Task FrameRequestsGetTheirAloneTokensInAnyBatch(int slots)
    {
        using var model = await Load("frame_model.safetensors");
        var requests = FrameRequests();
        var alone = Alone(model, BackendKind.Cpu, requests);
        Assert.Equal(Fixtures.Tokens("frame_b16_greedy.txt"), alone[0]);
        var batched = Batched(model, BackendKind.Cpu, requests, slots, out _);
        for (int i = 0; i < requests.Length; i++) Assert.True(alone[i].SequenceEqual(batched[i]), $"request {i} differs in a batch of {slots} slots");
    }

    [Fact]
    public async Task HybridRequestsGetTheirAloneTokensInABatch()
    {
        using var model = await Load("hybrid_model.safetensors");
        var requests = HybridRequests();
        var alone = Alone(model, BackendKind.Cpu, requests);
        Assert.Equal(Fixtures.Tokens("hybrid_greedy.txt"), alone[0]);
        var batched = Batched(model, BackendKind.Cpu, requests, 3, out _);
        for (int i = 0; i < requests.Length; i++) Assert.True(alone[i].SequenceEqual(batched[i]), $"hybrid request {i} differs in a batch");
    }

    /// <summary>The ILGPU kernels (CPU accelerator): batched sequences as alone, and as the CPU backend gives them.</summary>
    [Fact]
    public async Task DeviceBatchMatchesAloneAndTheCpuBackend()
    {
        using var model = await Load("frame_model.safetensors");
        GenerationRequest[] requests =
        [
            new() { Prompt = FramePrompt, Steps = 3 },
            new() { Prompt = FramePrompt, BlockSize = 1, Steps = 6, Seed = 9, Sampling = SamplingSettings.Published },
            new() { Prompt = FramePrompt[..32], BlockSize = 4, Steps = 4, Seed = 4, Sampling = new SamplingSettings(false, 0.9f, 40, 0.95f) },
        ];
        var alone = Alone(model, BackendKind.IlgpuCpu, requests);
        var batched = Batched(model, BackendKind.IlgpuCpu, requests, 3, out _);
        var cpu = Alone(model, BackendKind.Cpu, requests);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.True(alone[i].SequenceEqual(batched[i]), $"device request {i} differs in a batch");
            Assert.True(cpu[i].SequenceEqual(batched[i]), $"device request {i} differs from the CPU backend");
        }
    }

    [Fact]
    public async Task SlotsShareForwardCallsAndRefillAsRequestsFinish()
    {
        using var model = await Load("frame_model.safetensors");
        int[] steps = [2, 5, 2, 2];
        var requests = steps.Select((n, i) => new GenerationRequest { Prompt = FramePrompt, Steps = n, Seed = (ulong)i, Sampling = SamplingSettings.Published }).ToArray();
        Batched(model, BackendKind.Cpu, requests, 4, out long together);
        Assert.Equal(5, together); // the longest request's steps: every step of every request shares a call
        Batched(model, BackendKind.Cpu, requests, 2, out long two);
        Assert.Equal(6, two); // a slot takes the next request as soon as its own ends: 2+2+2 beside 5 (fixed pairs would take 5 + 2)
    }

    [Fact]
    public async Task BadRequestsAreRefusedBeforeAnyCompute()
    {
        using var model = await Load("frame_model.safetensors");
        using var batch = model.CreateBatchSession(2, new SessionOptions { Backend = BackendKind.Cpu, Threads = 1 });
        GenerationRequest[] requests = [new() { Prompt = FramePrompt, Steps = 2 }, new() { Prompt = [1, 2, 3], Steps = 2 }];
        var e = Assert.Throws<GenerationException>(() => batch.Generate(requests));
        Assert.StartsWith("request 1: frame mode samples from the last B = 16 prompt rows", e.Message);
        Assert.Equal(0, batch.ForwardCalls);
        var tooLong = Assert.Throws<GenerationException>(() => batch.Generate([new GenerationRequest { Prompt = FramePrompt, Steps = 1000 }]));
        Assert.Contains("request 0:", tooLong.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateBatchSession(0));
    }
}
