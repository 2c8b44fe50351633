namespace NbpEngine.Runtime.Sampling;

/// <summary>Selection without sorting (Hoare quickselect, median-of-three), in place.</summary>
public static class Select
{
    /// <summary>The k-th largest value (k from 1), reordering <paramref name="values"/>.</summary>
    public static float KthLargest(Span<float> values, int k)
    {
        if (k < 1 || k > values.Length) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in [1, {values.Length}]");
        int target = k - 1; // position in descending order
        int lo = 0, hi = values.Length - 1;
        while (lo < hi)
        {
            int mid = lo + (hi - lo) / 2;
            // median of three as pivot, descending order
            if (values[mid] > values[lo]) Swap(values, mid, lo);
            if (values[hi] > values[lo]) Swap(values, hi, lo);
            if (values[hi] > values[mid]) Swap(values, hi, mid);
            float pivot = values[mid];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (values[i] > pivot) i++;
                while (values[j] < pivot) j--;
                if (i <= j) { Swap(values, i, j); i++; j--; }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return values[target];
        }
        return values[target];
    }

    private static void Swap(Span<float> v, int a, int b) => (v[a], v[b]) = (v[b], v[a]);
}
