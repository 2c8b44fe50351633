using ScottPlot;

namespace NbpEngine.Bench;

/// <summary>
/// Generated frames/s against block size, the paper's Figure 7: this run beside the paper's A100 numbers, on a
/// log2 block axis. Two y axes, because a CPU run and an A100 differ by 100x and one scale would flatten one curve.
/// </summary>
internal static class Chart
{
    public static void Write(string path, string title, string ours, (int Block, double Fps)[] measured, (int Block, double Fps)[] paper)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("tokens per step (block size, log2 scale)");
        plot.Axes.Left.Label.Text = $"{ours}: generated frames/s";
        plot.Axes.Right.Label.Text = "paper (A100, Fig. 7): generated frames/s";

        var run = plot.Add.Scatter(measured.Select(p => Math.Log2(p.Block)).ToArray(), measured.Select(p => p.Fps).ToArray());
        run.LegendText = ours + " (left axis)";
        run.LineWidth = 2;
        run.MarkerSize = 8;
        var reference = plot.Add.Scatter(paper.Select(p => Math.Log2(p.Block)).ToArray(), paper.Select(p => p.Fps).ToArray());
        reference.LegendText = "paper, A100 (right axis)";
        reference.LinePattern = LinePattern.Dashed;
        reference.MarkerSize = 8;
        reference.Axes.YAxis = plot.Axes.Right;

        // ticks at the block sizes themselves, not at their logarithms
        var blocks = measured.Select(p => p.Block).Concat(paper.Select(p => p.Block)).Distinct().Order().ToArray();
        plot.Axes.Bottom.SetTicks(blocks.Select(b => Math.Log2(b)).ToArray(), blocks.Select(b => b.ToString()).ToArray());
        plot.Axes.SetLimitsX(Math.Log2(blocks[0]) - 0.3, Math.Log2(blocks[^1]) + 0.3);
        plot.Axes.SetLimitsY(0, measured.Max(p => p.Fps) * 1.15, plot.Axes.Left);
        plot.Axes.SetLimitsY(0, paper.Max(p => p.Fps) * 1.15, plot.Axes.Right);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, 900, 520);
    }
}
