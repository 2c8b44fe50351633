using NbpEngine.Fuzz;
using SharpFuzz;

// nbp-fuzz TARGET          run under afl-fuzz (SharpFuzz's out-of-process loop; input on stdin)
// nbp-fuzz seeds DIR FIX   write seed inputs for every target into DIR from the fixtures folder FIX
// nbp-fuzz replay TARGET F run one input file, exit 0 when read or refused as expected
if (args is ["seeds", var folder, var fixtures])
{
    FuzzTargets.WriteSeeds(folder, fixtures);
    return 0;
}
string scratch = Path.Combine(Path.GetTempPath(), $"nbp-fuzz-{Environment.ProcessId}");
Directory.CreateDirectory(scratch);
if (args is ["replay", var target, var file])
{
    Console.WriteLine(FuzzTargets.Run(target, file, scratch) ? "read" : "refused");
    return 0;
}
if (args is not [var name] || !FuzzTargets.Names.Contains(name))
{
    Console.Error.WriteLine($"usage: nbp-fuzz ({string.Join(" | ", FuzzTargets.Names)}) | seeds DIR FIXTURES | replay TARGET FILE");
    return 2;
}
string input = Path.Combine(scratch, "input");
Fuzzer.OutOfProcess.Run(stream =>
{
    using (var file = File.Create(input)) stream.CopyTo(file);
    FuzzTargets.Run(name, input, scratch);
});
return 0;
