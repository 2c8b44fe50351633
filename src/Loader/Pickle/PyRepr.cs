using System.Globalization;

namespace NbpEngine.Loader.Pickle;

/// <summary>Python's <c>str()</c> of the machine's scalars (what a converter writes as metadata), and short descriptions for errors.</summary>
public static class PyRepr
{
    /// <summary>str(value) for None, bool, int, float and str; null for anything else.</summary>
    public static string? Str(object? value) => value switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        string s => s,
        _ => null,
    };

    /// <summary>repr(float) as CPython writes it: the shortest digits that round-trip, fixed notation for
    /// decimal exponents -4..15 (with ".0" when integral), else d.ddde±XX.</summary>
    public static string Float(double value)
    {
        if (double.IsNaN(value)) return "nan";
        if (double.IsInfinity(value)) return value > 0 ? "inf" : "-inf";
        if (value == 0) return double.IsNegative(value) ? "-0.0" : "0.0";
        string sign = value < 0 ? "-" : "";
        // "E16" is not shortest; "R" is, in either fixed or exponent form: take its digits and exponent
        string r = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOfAny(['E', 'e']);
        string mantissa = e < 0 ? r : r[..e];
        int exponent = e < 0 ? 0 : int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
        int dot = mantissa.IndexOf('.');
        string digits = dot < 0 ? mantissa : mantissa[..dot] + mantissa[(dot + 1)..];
        int pointAt = (dot < 0 ? mantissa.Length : dot) + exponent; // value = 0.digits × 10^pointAt
        int leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        pointAt -= leadingZeros;
        if (digits.Length == 0) return sign + "0.0";
        if (pointAt > -4 && pointAt <= 16)
        {
            if (pointAt <= 0) return sign + "0." + new string('0', -pointAt) + digits;
            if (pointAt >= digits.Length) return sign + digits + new string('0', pointAt - digits.Length) + ".0";
            return sign + digits[..pointAt] + "." + digits[pointAt..];
        }
        int exp = pointAt - 1;
        string head = digits.Length == 1 ? digits : digits[..1] + "." + digits[1..];
        return sign + head + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
    }

    /// <summary>A short description for error messages.</summary>
    public static string Of(object? value) => value switch
    {
        string s => "'" + (s.Length > 40 ? s[..40] + "..." : s) + "'",
        byte[] b => $"bytes[{b.Length}]",
        PyTuple t when t.Count <= 6 => t.ToString(),
        _ => Str(value) ?? TypeName(value),
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        byte[] => "bytes",
        PyTuple => "tuple",
        PyList => "list",
        PyDict => "dict",
        PyGlobal g => g.ToString(),
        PyObject o => o.Type.ToString(),
        _ => value.GetType().Name,
    };
}
