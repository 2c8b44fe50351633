using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Tests.Support;

/// <summary>Transformers small enough for the suite, written on demand.</summary>
internal static class TinyModels
{
    /// <summary>A 1-layer, C = 32 transformer with the full 64000-code vocabulary and 64x64 video (8x8 latents).</summary>
    public static string FullVocabulary(string path)
    {
        const int c = 32, vocab = 64000, positions = 400;
        SafetensorsWriter.Write(path, OneLayer(new Random(5), c, vocab, positions), new Dictionary<string, string>
        {
            ["n_head"] = "2", ["token_number_per_step"] = "16", ["vocab_size"] = "64000", ["resolution"] = "64", ["sequence_length"] = "17",
        });
        return path;
    }

    /// <summary>
    /// Hybrid, B = 4, 100 video codes, a 1000-id condition vocabulary (the fixture text model's), 8 condition tokens, 2 latent
    /// frames of 2x2; with an uncond_embedding [8, C] (classifier-free guidance) unless <paramref name="unconditional"/> is false.
    /// </summary>
    public static string TextHybrid(string path, bool unconditional = true)
    {
        const int c = 16, b = 4, video = 100, condition = 1000, vocab = b + condition + video, positions = 64;
        var rng = new Random(11);
        var t = OneLayer(rng, c, vocab, positions);
        if (unconditional) t.Add(("transformer.uncond_embedding", [8, c], Random(rng, 8 * c, 1f)));
        SafetensorsWriter.Write(path, t, new Dictionary<string, string>
        {
            ["n_head"] = "2", ["token_number_per_step"] = $"{b}", ["vocab_size"] = $"{video}", ["hybrid"] = "True", ["cond_token_num"] = "8",
            ["resolution"] = "16", ["sequence_length"] = "5",
        });
        return path;
    }

    private static float[] Random(Random rng, long n, float scale) => Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();

    /// <summary>Every tensor of a 1-layer transformer (MODEL.md §2 keys), uniform random in ±scale.</summary>
    private static List<(string, long[], float[])> OneLayer(Random rng, int c, int vocab, int positions)
    {
        float[] R(long n, float s) => Random(rng, n, s);
        var t = new List<(string, long[], float[])>
        {
            ("transformer.tok_emb.weight", [vocab, c], R(vocab * c, 1f)), ("transformer.pos_emb", [1, positions, c], R(positions * c, 0.5f)),
            ("transformer.blocks.0.ln1.weight", [c], R(c, 1f)), ("transformer.blocks.0.ln1.bias", [c], R(c, 0.1f)),
            ("transformer.blocks.0.ln2.weight", [c], R(c, 1f)), ("transformer.blocks.0.ln2.bias", [c], R(c, 0.1f)),
            ("transformer.ln_f.weight", [c], R(c, 1f)), ("transformer.ln_f.bias", [c], R(c, 0.1f)),
            ("transformer.head.weight", [vocab, c], R(vocab * c, 1f)),
        };
        foreach (var n in new[] { "query", "key", "value", "proj" })
            t.AddRange([($"transformer.blocks.0.attn.{n}.weight", [c, c], R(c * c, 0.2f)), ($"transformer.blocks.0.attn.{n}.bias", [c], R(c, 0.1f))]);
        t.AddRange([("transformer.blocks.0.mlp.0.weight", [4 * c, c], R(4 * c * c, 0.2f)), ("transformer.blocks.0.mlp.0.bias", [4 * c], R(4 * c, 0.1f)),
            ("transformer.blocks.0.mlp.2.weight", [c, 4 * c], R(4 * c * c, 0.1f)), ("transformer.blocks.0.mlp.2.bias", [c], R(c, 0.1f))]);
        return t;
    }
}
