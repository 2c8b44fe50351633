using NbpEngine.Runtime.Generation;
using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Pipeline.Evaluation;

/// <summary>One row of the quality table: mean PSNR (dB) over clips of the predicted frames against the truth.</summary>
public sealed record QualityRow(string Method, double MeanPsnr, double MinPsnr);

/// <summary>
/// Frame prediction judged on held-out synthetic clips (issue 18 item 7): the engine's greedy and top-k sampled
/// predictions of frames 6-17 from the first 5, next to repeating the last real frame (what a model must beat) and the
/// tokenizer's own reconstruction of the true clip (the ceiling a perfect transformer would reach). PSNR is over the
/// predicted frames' pixels in [0, 1], per clip, then averaged.
/// </summary>
public static class PredictionQuality
{
    public const int ConditioningFrames = 5;

    public static IReadOnlyList<QualityRow> Evaluate(NbpPipeline pipeline, int clips, int seed, ulong samplingSeed = 1, IProgress<int>? progress = null,
        CancellationToken cancellationToken = default)
    {
        if (clips < 1) throw new ArgumentOutOfRangeException(nameof(clips), clips, "at least one clip");
        int side = pipeline.Model.Config.Resolution;
        var psnr = new Dictionary<string, List<double>>
        {
            ["engine greedy"] = [], ["engine top-k 100 (seeded)"] = [], ["copy last real frame"] = [], ["tokenizer reconstruction (ceiling)"] = [],
        };
        for (int i = 0; i < clips; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var truth = SyntheticClips.Clip(seed, i, side);
            var conditioning = truth.First(ConditioningFrames);
            // the conditioning is encoded once for both predictions (PredictFrames would encode it for each)
            var (_, prompt, _) = pipeline.EncodeConditioning(conditioning);
            foreach (var (method, request) in new[]
                     {
                         ("engine greedy", new GenerationRequest { Prompt = prompt }),
                         ("engine top-k 100 (seeded)", new GenerationRequest { Prompt = prompt, Seed = samplingSeed + (ulong)i, Sampling = new SamplingSettings(false, 1f, 100, 1f) }),
                     })
            {
                var generation = pipeline.Generate(request, null, cancellationToken);
                psnr[method].Add(Psnr(pipeline.DecodePrediction(prompt, generation.Tokens).Video, truth));
            }
            psnr["copy last real frame"].Add(Psnr(RepeatLast(conditioning, truth.Frames), truth));
            var (_, whole, _) = pipeline.EncodeConditioning(truth);
            psnr["tokenizer reconstruction (ceiling)"].Add(Psnr(pipeline.DecodePrediction(whole, []).Video, truth));
            progress?.Report(i + 1);
        }
        return psnr.Select(kv => new QualityRow(kv.Key, kv.Value.Average(), kv.Value.Min())).ToList();
    }

    /// <summary>PSNR of frames 6.. of <paramref name="video"/> against the same frames of <paramref name="truth"/>.</summary>
    public static double Psnr(VideoClip video, VideoClip truth)
    {
        if (video.Height != truth.Height || video.Width != truth.Width || video.Frames < truth.Frames)
            throw new ArgumentException($"a {video.Frames}x{video.Height}x{video.Width} video against a {truth.Frames}x{truth.Height}x{truth.Width} truth");
        long plane = (long)truth.Height * truth.Width;
        double squares = 0;
        long count = 0;
        for (int c = 0; c < 3; c++)
            for (int t = ConditioningFrames; t < truth.Frames; t++)
                for (long p = 0; p < plane; p++)
                {
                    double d = Math.Clamp(video.Pixels[(c * video.Frames + t) * plane + p], 0f, 1f) - truth.Pixels[(c * truth.Frames + t) * plane + p];
                    squares += d * d;
                    count++;
                }
        return 10 * Math.Log10(1 / Math.Max(squares / count, 1e-12));
    }

    /// <summary>The conditioning frames, then the last of them repeated up to <paramref name="frames"/>.</summary>
    public static VideoClip RepeatLast(VideoClip conditioning, int frames)
    {
        long plane = (long)conditioning.Height * conditioning.Width;
        var pixels = new float[3 * frames * plane];
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < frames; t++)
                Array.Copy(conditioning.Pixels, (c * conditioning.Frames + Math.Min(t, conditioning.Frames - 1)) * plane, pixels, (c * frames + t) * plane, plane);
        return new VideoClip(pixels, frames, conditioning.Height, conditioning.Width);
    }
}
