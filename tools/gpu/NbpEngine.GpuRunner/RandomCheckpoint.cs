using NbpEngine.Loader.Safetensors;

namespace NbpEngine.GpuRunner;

/// <summary>A K600-shaped (or smaller) random-weight checkpoint for timing; values do not matter for speed.</summary>
internal static class RandomCheckpoint
{
    public static void Write(string path, int layers, int heads, int width, int vocab, int positions)
    {
        ulong state = 0x9E3779B97F4A7C15UL;
        float[] Normal(long count, float scale)
        {
            var a = new float[count];
            for (long i = 0; i < count; i++)
            {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                a[i] = ((state >> 40) / (float)(1 << 24) - 0.5f) * 2f * scale;
            }
            return a;
        }
        long c = width;
        var tensors = new List<(string, long[], float[])>
        {
            ("transformer.tok_emb.weight", [vocab, c], Normal(vocab * c, 0.02f)),
            ("transformer.pos_emb", [1, positions, c], Normal(positions * c, 0.02f)),
        };
        for (int i = 0; i < layers; i++)
        {
            string b = $"transformer.blocks.{i}.";
            tensors.Add((b + "ln1.weight", [c], Normal(c, 0.1f)));
            tensors.Add((b + "ln1.bias", [c], Normal(c, 0.02f)));
            foreach (var n in new[] { "query", "key", "value", "proj" })
            {
                tensors.Add((b + $"attn.{n}.weight", [c, c], Normal(c * c, 0.02f)));
                tensors.Add((b + $"attn.{n}.bias", [c], Normal(c, 0.02f)));
            }
            tensors.Add((b + "ln2.weight", [c], Normal(c, 0.1f)));
            tensors.Add((b + "ln2.bias", [c], Normal(c, 0.02f)));
            tensors.Add((b + "mlp.0.weight", [4 * c, c], Normal(4 * c * c, 0.02f)));
            tensors.Add((b + "mlp.0.bias", [4 * c], Normal(4 * c, 0.02f)));
            tensors.Add((b + "mlp.2.weight", [c, 4 * c], Normal(4 * c * c, 0.02f)));
            tensors.Add((b + "mlp.2.bias", [c], Normal(c, 0.02f)));
        }
        tensors.Add(("transformer.ln_f.weight", [c], Normal(c, 0.1f)));
        tensors.Add(("transformer.ln_f.bias", [c], Normal(c, 0.02f)));
        tensors.Add(("transformer.head.weight", [vocab, c], Normal(vocab * c, 0.5f)));
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string>
        {
            ["n_head"] = heads.ToString(), ["token_number_per_step"] = "16", ["vocab_size"] = vocab.ToString(), ["hybrid"] = "false",
        });
    }
}
