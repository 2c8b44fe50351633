namespace NbpEngine.Core;

/// <summary>
/// The FSQ code layout of TOKENIZER.md: six dimensions with levels [8, 8, 8, 5, 5, 5], index = Σ digit_d · basis_d,
/// 64000 codes. Functions, not arrays, so the ILGPU kernels can call them too.
/// </summary>
public static class FsqLayout
{
    public const int Dimensions = 6;
    public const int CodebookSize = 64000;

    public static int Levels(int d) => d < 3 ? 8 : 5;

    public static int Basis(int d) => d switch { 0 => 1, 1 => 8, 2 => 64, 3 => 512, 4 => 2560, _ => 12800 };
}
