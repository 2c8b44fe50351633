using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;
using NbpEngine.Tests.Support;

namespace NbpEngine.Tests;

/// <summary>README's embedding example, compiled and run so it cannot drift from the API.</summary>
public class ReadmeExampleTests
{
    [Fact]
    public async Task TheReadmeEmbeddingExampleRuns()
    {
        string path = Fixtures.PathOf("frame_model.safetensors");
        int[] promptIds = Fixtures.Tokens("frame_prompt.txt");
        var streamed = new List<int>();

        // --- README example begins ---
        using var model = await NbpModel.LoadAsync(path);                      // weights: once, shareable
        using var session = model.CreateSession(new SessionOptions { Threads = 2 }); // owns its KV cache
        var request = new GenerationRequest
        {
            Prompt = promptIds,                                                 // 2 latent frames of ids
            Sampling = new SamplingSettings(Greedy: false, Temperature: 1f, TopK: 100, TopP: 0.9f),
            Seed = 42,
        };
        await foreach (var block in session.GenerateAsync(request))
            streamed.AddRange(block.Tokens);                                    // one block of B ids per step
        // --- README example ends ---

        // The streaming API and the allocation-free span API give the same tokens.
        var direct = new int[session.Plan(request).TokenCount];
        session.Generate(request, direct);
        Assert.Equal(direct, streamed);
        Assert.Equal(192, streamed.Count);
    }

    [Fact]
    public async Task StreamingStopsWhenCancelled()
    {
        using var model = await NbpModel.LoadAsync(Fixtures.PathOf("frame_model.safetensors"));
        using var session = model.CreateSession(new SessionOptions { Threads = 2 });
        using var cts = new CancellationTokenSource();
        int blocks = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(new GenerationRequest { Prompt = Fixtures.Tokens("frame_prompt.txt") }, null, cts.Token))
                if (++blocks == 3) cts.Cancel();
        });
        Assert.Equal(3, blocks);
    }
}
