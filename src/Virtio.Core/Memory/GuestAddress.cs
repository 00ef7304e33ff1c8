using System.Globalization;

namespace Virtio.Core.Memory;

/// <summary>A guest physical address. A value type so it cannot be confused with a host pointer or a length.</summary>
/// <param name="Value">The address as the guest sees it.</param>
public readonly record struct GuestAddress(ulong Value)
{
    /// <summary>Returns the address <paramref name="offset"/> bytes further on, or false when that overflows 64 bits.</summary>
    /// <param name="offset">Bytes to add.</param>
    /// <param name="result">The sum when it fits.</param>
    /// <returns>True when no overflow happened.</returns>
    public bool TryAdd(ulong offset, out GuestAddress result)
    {
        ulong sum = Value + offset;
        if (sum < Value)
        {
            result = default;
            return false;
        }

        result = new GuestAddress(sum);
        return true;
    }

    /// <summary>Formats the address as the spec and the kernel do: 0x followed by 16 hex digits.</summary>
    /// <returns>The address in hex.</returns>
    public override string ToString() => "0x" + Value.ToString("x16", CultureInfo.InvariantCulture);
}
