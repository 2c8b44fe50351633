using NbpEngine.Runtime.Attention;

namespace NbpEngine.Runtime.Backends;

/// <summary>
/// One sequence's part of a batched <see cref="IBackendSession.Forward"/> call: <paramref name="Rows"/> tokens (taken in
/// feed order from the call's token span) at the sequence's next positions, read under <paramref name="Mask"/>, and
/// logits for its last <paramref name="LogitRows"/> rows. The first
/// <paramref name="UnconditionalRows"/> rows embed the checkpoint's uncond_embedding rows in place of their tokens' (the
/// classifier-free guidance's unconditional stream; position embeddings are added as for any row).
/// <para>
/// With <paramref name="GuidesSequence"/> ≥ 0 the feed is that sequence's unconditional stream for this call (fed in
/// it, with the same LogitRows): the backend blends the two streams' final-normed rows into the guided one's,
/// (1+t)·own − t·this with t = <paramref name="GuidanceScale"/> (<see cref="Sampling.Guidance.Blend"/>), before the
/// vocabulary head, and computes no logits for this feed (LogitRowsOf gives 0). The head is linear, so the guided
/// logits are MODEL.md §5's (1+t)·cond − t·uncond up to rounding, and a guided step runs the head once, not twice
/// (on the CPU the head of a big vocabulary is a large part of a step).
/// </para>
/// </summary>
public readonly record struct SequenceFeed(int Sequence, int Rows, AttentionMask Mask, int LogitRows, int UnconditionalRows = 0,
    int GuidesSequence = -1, float GuidanceScale = 0f)
{
    /// <summary>This feed is another sequence's unconditional stream: its logit rows are blended in, not sent to the head.</summary>
    public bool Guides => GuidesSequence >= 0;

    /// <summary>
    /// Where each feed's rows (or, with <paramref name="logits"/>, its logit rows) go in a call's activations: the feeds
    /// whose row count <paramref name="firstGroup"/> accepts first, then the rest, each group in feed order, so a backend
    /// can run each group through the kernel a feed of that size gets alone (batch invariance) with one weight read.
    /// Logit rows of guiding feeds (<see cref="Guides"/>) come after all others: [0, total) go to the head, the
    /// guiding rows [total, total + their rows) are only blended. Writes each feed's first row to
    /// <paramref name="start"/>; returns the first group's rows.
    /// </summary>
    public static int Arrange(ReadOnlySpan<SequenceFeed> feeds, bool logits, Func<int, bool> firstGroup, Span<int> start, out int total)
    {
        total = 0;
        int firstEnd = 0, end = 0;
        for (int pass = 0; pass < 3; pass++)
        {
            for (int f = 0; f < feeds.Length; f++)
            {
                var feed = feeds[f];
                int rows = logits ? feed.LogitRows : feed.Rows;
                bool blendedOnly = logits && feed.Guides;
                if (pass == 2 ? !blendedOnly : blendedOnly || firstGroup(rows) != (pass == 0)) continue;
                start[f] = end;
                end += rows;
            }
            if (pass == 0) firstEnd = end;
            if (pass == 1) total = end;
        }
        return firstEnd;
    }

    /// <summary>The index of the feed of <paramref name="sequence"/> in <paramref name="feeds"/> (Validate has checked there is one).</summary>
    public static int FeedOf(ReadOnlySpan<SequenceFeed> feeds, int sequence)
    {
        for (int f = 0; f < feeds.Length; f++)
            if (feeds[f].Sequence == sequence) return f;
        throw new ArgumentException($"sequence {sequence} is not fed in this call", nameof(feeds));
    }

    /// <summary>Checks the feeds of one call against a session's shape; messages name the feed and the value.</summary>
    public static void Validate(ReadOnlySpan<SequenceFeed> feeds, int tokenCount, int maxRows, int maxLogitRows, ReadOnlySpan<int> lengths, int capacity, int unconditionalRows)
    {
        if (feeds.IsEmpty) throw new ArgumentException("a forward call needs at least one sequence feed", nameof(feeds));
        int rows = 0, logitRows = 0;
        int sequences = lengths.Length;
        Span<bool> seen = sequences <= 256 ? stackalloc bool[sequences] : new bool[sequences];
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            if ((uint)feed.Sequence >= (uint)sequences)
                throw new ArgumentOutOfRangeException(nameof(feeds), feed.Sequence, $"feed {f}: sequence {feed.Sequence} is outside [0, {sequences})");
            if (seen[feed.Sequence]) throw new ArgumentException($"feed {f}: sequence {feed.Sequence} is fed twice in one call", nameof(feeds));
            seen[feed.Sequence] = true;
            if (feed.Rows < 1) throw new ArgumentOutOfRangeException(nameof(feeds), feed.Rows, $"feed {f}: at least one row");
            if (feed.LogitRows < 1 || feed.LogitRows > feed.Rows)
                throw new ArgumentOutOfRangeException(nameof(feeds), feed.LogitRows, $"feed {f}: logit rows must be in [1, {feed.Rows}]");
            int length = lengths[feed.Sequence];
            // uncond_embedding row r stands for condition position r: only a prefill from position 0 takes them
            if (feed.UnconditionalRows < 0 || feed.UnconditionalRows > Math.Min(unconditionalRows, feed.Rows) || (feed.UnconditionalRows > 0 && length != 0))
                throw new ArgumentOutOfRangeException(nameof(feeds), feed.UnconditionalRows,
                    $"feed {f}: {feed.UnconditionalRows} unconditional rows at position {length}; the checkpoint has {unconditionalRows} uncond_embedding rows, for positions 0..");
            if (length + feed.Rows > capacity)
                throw new InvalidOperationException($"KV cache of sequence {feed.Sequence} full: {length} positions cached + {feed.Rows} new > capacity {capacity}");
            rows += feed.Rows;
            logitRows += feed.LogitRows;
        }
        for (int f = 0; f < feeds.Length; f++)
        {
            var feed = feeds[f];
            if (!feed.Guides) continue;
            if (!float.IsFinite(feed.GuidanceScale))
                throw new ArgumentOutOfRangeException(nameof(feeds), feed.GuidanceScale, $"feed {f}: the guidance scale must be finite");
            if (feed.GuidesSequence == feed.Sequence) throw new ArgumentException($"feed {f} guides its own sequence {feed.Sequence}", nameof(feeds));
            int guided = -1;
            for (int g = 0; g < feeds.Length; g++)
            {
                if (g != f && feeds[g].Sequence == feed.GuidesSequence) guided = g;
                if (g != f && feeds[g].Guides && feeds[g].GuidesSequence == feed.GuidesSequence)
                    throw new ArgumentException($"feeds {Math.Min(f, g)} and {Math.Max(f, g)} both guide sequence {feed.GuidesSequence}", nameof(feeds));
            }
            if (guided < 0 || feeds[guided].Guides)
                throw new ArgumentException($"feed {f} guides sequence {feed.GuidesSequence}, which is {(guided < 0 ? "not fed in this call" : "itself a guiding stream")}", nameof(feeds));
            if (feeds[guided].LogitRows != feed.LogitRows)
                throw new ArgumentException($"feed {f} guides sequence {feed.GuidesSequence} with {feed.LogitRows} logit rows, that sequence has {feeds[guided].LogitRows}", nameof(feeds));
        }
        if (rows != tokenCount) throw new ArgumentException($"the feeds take {rows} tokens, the call passes {tokenCount}", nameof(feeds));
        if (rows > maxRows) throw new ArgumentOutOfRangeException(nameof(feeds), rows, $"a forward call feeds 1..{maxRows} rows (the session's maxRows)");
        if (logitRows > maxLogitRows) throw new ArgumentOutOfRangeException(nameof(feeds), logitRows, $"a forward call asks for at most {maxLogitRows} logit rows (the session's maxLogitRows)");
    }
}
