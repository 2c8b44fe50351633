using System.Globalization;

namespace NbpEngine.Core;

/// <summary>
/// The FSQ code layout: six dimensions of L_d levels each, index = Σ digit_d · basis_d with basis_d the product of the
/// levels before d. TOKENIZER.md's tokenizer has [8, 8, 8, 5, 5, 5] (64000 codes, <see cref="Published"/>); a tokenizer
/// file may name others in its <c>fsq_levels</c> metadata (a smaller codebook, as the demo tokenizer's). Six fields,
/// not an array, so the ILGPU kernels take it as an argument.
/// </summary>
public readonly struct FsqLevels : IEquatable<FsqLevels>
{
    public const int Dimensions = 6;
    /// <summary>Most levels one dimension may have, and most codes in all (the model's embedding has a row per code).</summary>
    public const int MaxLevels = 256, MaxCodebookSize = 1 << 24;
    /// <summary>The metadata key a tokenizer file names its levels under ("3,3,3,3,3,3").</summary>
    public const string MetadataKey = "fsq_levels";

    private readonly int _l0, _l1, _l2, _l3, _l4, _l5;

    /// <summary>TOKENIZER.md's levels, [8, 8, 8, 5, 5, 5]: 64000 codes.</summary>
    public static FsqLevels Published => new(8, 8, 8, 5, 5, 5);

    public FsqLevels(int l0, int l1, int l2, int l3, int l4, int l5)
    {
        if (Problem([l0, l1, l2, l3, l4, l5]) is { } problem) throw new ArgumentOutOfRangeException(nameof(l0), problem);
        (_l0, _l1, _l2, _l3, _l4, _l5) = (l0, l1, l2, l3, l4, l5);
    }

    /// <summary>Why these levels are not usable, or null.</summary>
    private static string? Problem(int[] levels)
    {
        if (levels.Length != Dimensions) return $"expected {Dimensions} levels, found {levels.Length}";
        if (levels.Any(l => l < 2 || l > MaxLevels)) return $"FSQ levels {string.Join(",", levels)}: each must be in [2, {MaxLevels}]";
        long size = levels.Aggregate(1L, (product, l) => product * l);
        return size > MaxCodebookSize ? $"FSQ levels {string.Join(",", levels)}: {size} codes, more than {MaxCodebookSize}" : null;
    }

    public int Levels(int d) => d switch { 0 => _l0, 1 => _l1, 2 => _l2, 3 => _l3, 4 => _l4, _ => _l5 };

    public int Basis(int d)
    {
        int basis = 1;
        for (int e = 0; e < d; e++) basis *= Levels(e);
        return basis;
    }

    public int CodebookSize => Basis(Dimensions);

    /// <summary>"8,8,8,5,5,5" -> levels; <paramref name="source"/> (the file and key) starts the error message.</summary>
    public static FsqLevels Parse(string text, string source)
    {
        var parts = text.Split(',');
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out values[i]))
                throw new InvalidDataException($"{source}: '{text}' is not {Dimensions} comma-separated level counts");
        if (Problem(values) is { } problem) throw new InvalidDataException($"{source}: {problem} ('{text}')");
        return new FsqLevels(values[0], values[1], values[2], values[3], values[4], values[5]);
    }

    public override string ToString() => $"{_l0},{_l1},{_l2},{_l3},{_l4},{_l5}";
    public bool Equals(FsqLevels other) =>
        _l0 == other._l0 && _l1 == other._l1 && _l2 == other._l2 && _l3 == other._l3 && _l4 == other._l4 && _l5 == other._l5;
    public override bool Equals(object? obj) => obj is FsqLevels other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_l0, _l1, _l2, _l3, _l4, _l5);
    public static bool operator ==(FsqLevels a, FsqLevels b) => a.Equals(b);
    public static bool operator !=(FsqLevels a, FsqLevels b) => !a.Equals(b);
}
