using NbpEngine.Loader.Safetensors;

namespace NbpEngine.Parity;

/// <summary>A K600-shaped (or smaller) random-weight checkpoint for timing; values do not matter for speed.</summary>
public static class RandomCheckpoint
{
    /// <param name="hybrid">null: a frame model; else a hybrid (UCF) model with this many condition tokens and an uncond_embedding</param>
    /// <param name="videoVocab">the metadata vocab_size (video codes) of a hybrid model; the embedding's other rows are condition ids and specials</param>
    public static void Write(string path, int layers, int heads, int width, int vocab, int positions, int? hybrid = null, int videoVocab = 0)
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
        var metadata = new Dictionary<string, string>
        {
            ["n_head"] = heads.ToString(), ["token_number_per_step"] = "16", ["vocab_size"] = vocab.ToString(), ["hybrid"] = "false",
        };
        if (hybrid is { } cond)
        {
            tensors.Add(("transformer.uncond_embedding", [cond, c], Normal(cond * c, 0.02f)));
            metadata["hybrid"] = "true";
            metadata["cond_token_num"] = cond.ToString();
            metadata["vocab_size"] = videoVocab.ToString();
        }
        SafetensorsWriter.Write(path, tensors, metadata);
    }
}

/// <summary>A full-size (or narrower) random tokenizer with the TOKENIZER.md layer list and key names, for timing.</summary>
public static class RandomTokenizer
{
    public static void Write(string path, int a = 512, int b = 256, int c = 128)
    {
        var rng = new Random(7);
        var tensors = new List<(string, long[], float[])>();
        float[] R(long n, float s) { var x = new float[n]; for (long i = 0; i < n; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * s; return x; }
        void Conv(string key, int cin, int cout, int k)
        {
            tensors.Add((key + ".weight", [cout, cin, k, k, k], R((long)cout * cin * k * k * k, 1f / MathF.Sqrt(cin * k * k * k))));
            tensors.Add((key + ".bias", [cout], R(cout, 0.01f)));
        }
        void Norm(string key, int ch) { tensors.Add((key + ".weight", [ch], R(ch, 0.1f).Select(v => v + 1).ToArray())); tensors.Add((key + ".bias", [ch], R(ch, 0.01f))); }
        void Swish(string key, int ch) => tensors.Add((key, [1, ch, 1, 1, 1], R(ch, 0.1f).Select(v => v + 1).ToArray()));
        void Residual(string key, int cin, int cout)
        {
            Norm(key + ".fn.0", cin); Swish(key + ".fn.1.beta", cin); Conv(key + ".fn.2.conv", cin, cout, 3);
            Norm(key + ".fn.3", cout); Swish(key + ".fn.4.beta", cout); Conv(key + ".fn.5.conv", cout, cout, 3);
            if (cin != cout) Conv(key + ".residual_fn.0.conv", cin, cout, 1);
        }
        const string d = "decoder_layers.";
        Conv(d + "0.conv", 6, a, 3);
        for (int i = 1; i <= 8; i++) Residual(d + i, a, a);
        Conv(d + "9.conv", a, 8 * a, 3);
        Residual(d + "11", a, b);
        for (int i = 12; i <= 14; i++) Residual(d + i, b, b);
        Conv(d + "15.conv", b, 8 * b, 3);
        for (int i = 17; i <= 20; i++) Residual(d + i, b, b);
        Conv(d + "21.conv", b, 4 * b, 3);
        Residual(d + "23", b, c);
        for (int i = 24; i <= 26; i++) Residual(d + i, c, c);
        Norm(d + "27", c); Swish(d + "28.beta", c); Conv(d + "29.conv", c, 3, 3);
        const string e = "encoder_layers.";
        Conv(e + "0.conv", 3, c, 3);
        for (int i = 1; i <= 4; i++) Residual(e + i, c, c);
        Conv(e + "5.conv", c, c, 3);
        Residual(e + "6", c, b);
        for (int i = 7; i <= 9; i++) Residual(e + i, b, b);
        Conv(e + "10.conv", b, b, 3);
        for (int i = 11; i <= 14; i++) Residual(e + i, b, b);
        Conv(e + "15.conv", b, b, 3);
        Residual(e + "16", b, a);
        for (int i = 17; i <= 23; i++) Residual(e + i, a, a);
        Norm(e + "24", a); Swish(e + "25.beta", a);
        tensors.Add((e + "26.weight", [6, a, 1, 1, 1], R(6L * a, 1f / MathF.Sqrt(a))));
        tensors.Add((e + "26.bias", [6], R(6, 0.01f)));
        SafetensorsWriter.Write(path, tensors);
    }
}
