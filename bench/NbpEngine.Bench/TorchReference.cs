using System.Diagnostics;
using System.Text;

namespace NbpEngine.Bench;

/// <summary>The PyTorch reference pipeline on the same files (bench/torch_pipeline.py), as a second table with the ratio per block.</summary>
internal static class TorchReference
{
    public static string Table(BenchSettings s, string weights, string tokenizer, int heads, (int A, int B, int C) widths, List<BlockRow> rows, Func<BlockRow, double> totalOf)
    {
        // the script imports tools/reference from the repository, so run it where it lies: the checkout
        // around the working directory or around this binary
        string? script = new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory }
            .SelectMany(start => Ancestors(new DirectoryInfo(start)))
            .Select(d => Path.Combine(d.FullName, "bench", "torch_pipeline.py"))
            .FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException("--torch: bench/torch_pipeline.py not found above the working directory or nbp-bench's folder");
        string json = Path.Combine(s.Out, "torch-pipeline.json");
        var psi = new ProcessStartInfo(s.Python) { RedirectStandardError = false };
        foreach (var a in new[] { script, "--weights", weights, "--tokenizer", tokenizer, "--heads", heads.ToString(),
                     "--widths", $"{widths.A},{widths.B},{widths.C}", "--blocks", string.Join(",", s.Blocks), "--threads", s.Threads.ToString(), "--json", json })
            psi.ArgumentList.Add(a);
        Console.Error.WriteLine($"nbp-bench: running the PyTorch reference pipeline: {s.Python} {string.Join(" ", psi.ArgumentList)}");
        using (var process = Process.Start(psi)!)
        {
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"{script} exited with {process.ExitCode} (PyTorch installed? bash bench/install-reference.sh)");
        }
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        double tEncode = root.GetProperty("encode").GetDouble(), tDecode = root.GetProperty("decode").GetDouble();
        var torchRows = root.GetProperty("rows").EnumerateArray()
            .Select(r => (Block: r.GetProperty("block").GetInt32(), Steps: r.GetProperty("steps").GetInt32(), Prefill: r.GetProperty("prefill").GetDouble(), StepSeconds: r.GetProperty("step_seconds").GetDouble()))
            .ToList();
        double TorchTotal((int Block, int Steps, double Prefill, double StepSeconds) r) => tEncode + r.Prefill + r.StepSeconds + tDecode;
        var torchBase = torchRows.FirstOrDefault(r => r.Block == 1);
        var md = new StringBuilder();
        md.AppendLine();
        md.AppendLine($"## The same workload in the PyTorch reference (tools/reference, torch {root.GetProperty("torch").GetString()}, {root.GetProperty("threads").GetInt32()} threads), same run, same weight files");
        md.AppendLine();
        md.AppendLine("| block | steps | encode s | prefill s | steps s | decode s | total s | generated frames/s | speedup vs block 1 | nbp-bench faster by |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in torchRows)
        {
            var ours = rows.FirstOrDefault(x => x.Block == r.Block);
            string speedup = torchBase.Block == 1 ? $"{TorchTotal(torchBase) / TorchTotal(r):F2}x" : "-";
            string vs = ours is not null ? $"{TorchTotal(r) / totalOf(ours):F2}x" : "-";
            md.AppendLine($"| {r.Block} | {r.Steps} | {tEncode:F2} | {r.Prefill:F2} | {r.StepSeconds:F2} | {tDecode:F2} | {TorchTotal(r):F2} | {12 / TorchTotal(r):F3} | {speedup} | {vs} |");
        }
        var t16 = torchRows.FirstOrDefault(r => r.Block == 16);
        if (t16.Block == 16 && torchBase.Block == 1)
        {
            md.AppendLine();
            md.AppendLine($"PyTorch NBP (block 16) vs NTP (block 1): {TorchTotal(torchBase) / TorchTotal(t16):F2}x whole pipeline, " +
                          $"{(torchBase.Prefill + torchBase.StepSeconds) / (t16.Prefill + t16.StepSeconds):F2}x generation alone.");
        }
        return md.ToString();
    }

    private static IEnumerable<DirectoryInfo> Ancestors(DirectoryInfo? d)
    {
        for (; d is not null; d = d.Parent) yield return d;
    }
}
