using NbpEngine.Runtime.Attention;

namespace NbpEngine.Runtime.Backends;

/// <summary>
/// One sequence's part of a batched <see cref="IBackendSession.Forward"/> call: <paramref name="Rows"/> tokens (taken in
/// feed order from the call's token span) at the sequence's next positions, read under <paramref name="Mask"/>, and
/// logits for its last <paramref name="LogitRows"/> rows. The first
/// <paramref name="UnconditionalRows"/> rows embed the checkpoint's uncond_embedding rows in place of their tokens' (the
/// classifier-free guidance's unconditional stream; position embeddings are added as for any row).
/// </summary>
public readonly record struct SequenceFeed(int Sequence, int Rows, AttentionMask Mask, int LogitRows, int UnconditionalRows = 0)
{
    /// <summary>
    /// Where each feed's rows (or, with <paramref name="logits"/>, its logit rows) go in a call's activations: the feeds
    /// whose row count <paramref name="firstGroup"/> accepts first, then the rest, each group in feed order, so a backend
    /// can run each group through the kernel a feed of that size gets alone (batch invariance) with one weight read.
    /// Writes each feed's first row to <paramref name="start"/>; returns the first group's rows.
    /// </summary>
    public static int Arrange(ReadOnlySpan<SequenceFeed> feeds, bool logits, Func<int, bool> firstGroup, Span<int> start, out int total)
    {
        total = 0;
        int firstEnd = 0;
        for (int pass = 0; pass < 2; pass++)
        {
            for (int f = 0; f < feeds.Length; f++)
            {
                int rows = logits ? feeds[f].LogitRows : feeds[f].Rows;
                if (firstGroup(rows) != (pass == 0)) continue;
                start[f] = total;
                total += rows;
            }
            if (pass == 0) firstEnd = total;
        }
        return firstEnd;
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
        if (rows != tokenCount) throw new ArgumentException($"the feeds take {rows} tokens, the call passes {tokenCount}", nameof(feeds));
        if (rows > maxRows) throw new ArgumentOutOfRangeException(nameof(feeds), rows, $"a forward call feeds 1..{maxRows} rows (the session's maxRows)");
        if (logitRows > maxLogitRows) throw new ArgumentOutOfRangeException(nameof(feeds), logitRows, $"a forward call asks for at most {maxLogitRows} logit rows (the session's maxLogitRows)");
    }
}
