namespace NbpEngine.Parity;

/// <summary>One parity case: the device result against the CPU backend.</summary>
/// <param name="Measure">NMSE for numeric ops, mismatch count for token ops</param>
public sealed record ParityResult(string Op, string Case, double Measure, double Bound, string Detail = "")
{
    public bool Passed => Measure <= Bound && !double.IsNaN(Measure);
    public override string ToString() => $"{(Passed ? "ok  " : "FAIL")} {Op} {Case}: {Measure:E3} (bound {Bound:E1}) {Detail}".TrimEnd();
}

/// <summary>Normalised mean squared error, Σ(a-b)² / Σb², the parity measure of STYLE.md habit 2.</summary>
public static class Nmse
{
    public const double F32 = 1e-7;

    public static double Of(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        if (actual.Length != expected.Length) return double.NaN;
        double error = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(actual[i])) return double.NaN;
            double d = actual[i] - expected[i];
            error += d * d;
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? error : error / norm;
    }
}
