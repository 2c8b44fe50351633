using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Tests.Support;

/// <summary>Transformers small enough for the suite, written on demand.</summary>
internal static class TinyModels
{
    /// <summary>A 1-layer, C = 32 transformer with the full 64000-code vocabulary and 64x64 video (8x8 latents).</summary>
    public static string FullVocabulary(string path)
    {
        const int c = 32, vocab = 64000, positions = 400;
        var rng = new Random(5);
        float[] R(long n, float s) => Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * s).ToArray();
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
        SafetensorsWriter.Write(path, t, new Dictionary<string, string>
        {
            ["n_head"] = "2", ["token_number_per_step"] = "16", ["vocab_size"] = "64000", ["resolution"] = "64", ["sequence_length"] = "17",
        });
        return path;
    }
}
