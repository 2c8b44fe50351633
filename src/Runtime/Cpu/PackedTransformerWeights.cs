using NbpEngine.Loader.Checkpoint;

namespace NbpEngine.Runtime.Cpu;

/// <summary>How the CPU backend holds the transformer's weight matrices.</summary>
public enum CpuWeightLayout
{
    /// <summary>
    /// A packed copy of every linear layer for the outer-product GEMM (PackedGemm): ~25% faster steps and
    /// prefill (K600, 2 cores: 7.9 s instead of 10.2 s per 768 tokens), at the cost of a second copy of the
    /// matrices in memory (3.1 GB for K600) and a one-time packing when the first CPU session is made
    /// (~5 s from a memory-mapped file there). The API's default: hosts generate many videos per load.
    /// </summary>
    Packed,
    /// <summary>The loader's matrices used where they lie (memory-mapped fp32 files cost no extra memory), dot-product GEMM.</summary>
    InPlace,
}

/// <summary>
/// Packed copies of the query, key, value, projection, MLP and head matrices (see <see cref="PackedWeights"/>),
/// made once per model and shared by every CPU session; the norms, biases and embeddings stay where the
/// loader put them. Packing runs layer by layer in parallel.
/// </summary>
public sealed unsafe class PackedTransformerWeights : IDisposable
{
    public sealed class Layer
    {
        public required PackedWeights Query, Key, Value, Proj, Fc, Out;
        public IEnumerable<PackedWeights> All => [Query, Key, Value, Proj, Fc, Out];
    }

    public Layer[] Layers { get; }
    public PackedWeights Head { get; }
    public long Bytes => Layers.SelectMany(l => l.All).Sum(p => p.Bytes) + Head.Bytes;

    public PackedTransformerWeights(TransformerWeights weights)
    {
        var cfg = weights.Config;
        int c = cfg.EmbeddingSize;
        var layers = new Layer[cfg.LayerCount];
        PackedWeights? head = null;
        Parallel.For(0, cfg.LayerCount + 1, i =>
        {
            if (i == cfg.LayerCount)
            {
                head = new PackedWeights(weights.Head, cfg.VocabSize, c);
                return;
            }
            var w = weights.Layers[i];
            layers[i] = new Layer
            {
                Query = new PackedWeights(w.QueryWeight, c, c), Key = new PackedWeights(w.KeyWeight, c, c),
                Value = new PackedWeights(w.ValueWeight, c, c), Proj = new PackedWeights(w.ProjWeight, c, c),
                Fc = new PackedWeights(w.FcWeight, 4 * c, c), Out = new PackedWeights(w.OutWeight, c, 4 * c),
            };
        });
        Layers = layers;
        Head = head!;
    }

    public void Dispose()
    {
        foreach (var p in Layers.SelectMany(l => l.All)) p.Dispose();
        Head.Dispose();
    }
}
