namespace NbpEngine.Core;

/// <summary>
/// Float bits to a uint whose unsigned order is the float order (NaN aside), and back: the key of the
/// samplers' radix selects of the k-th largest logit, on the CPU and in the kernels. Takes raw bits so that
/// each side reinterprets the float its own way (BitConverter on the CPU, ILGPU's Interop in kernels).
/// </summary>
public static class SortableFloat
{
    public static uint Key(uint floatBits) => (floatBits & 0x80000000u) != 0 ? ~floatBits : floatBits | 0x80000000u;

    public static uint Bits(uint key) => (key & 0x80000000u) != 0 ? key & 0x7FFFFFFFu : ~key;
}
