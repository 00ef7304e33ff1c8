namespace Virtio.VhostUser.Protocol;

/// <summary>
/// A packed ring's SET/GET_VRING_BASE value as QEMU sends and expects it
/// (<c>virtio_queue_packed_get_last_avail_idx</c>): bits 0-14 the next available position, bit 15 its
/// wrap counter; bits 16-30 the next used position, bit 31 its wrap counter. A split ring's base is
/// just the next available index.
/// </summary>
/// <param name="AvailPosition">The ring position of the next descriptor the device reads.</param>
/// <param name="AvailWrapCounter">The driver's lap that position is in.</param>
/// <param name="UsedPosition">The ring position of the next used descriptor the device writes.</param>
/// <param name="UsedWrapCounter">The device's lap that position is in.</param>
internal readonly record struct PackedBase(ushort AvailPosition, bool AvailWrapCounter, ushort UsedPosition, bool UsedWrapCounter)
{
    private const uint PositionMask = 0x7fff;
    private const int WrapBit = 15;

    /// <summary>A fresh ring: both positions 0, both counters 1 (virtio 1.2 §2.8.1).</summary>
    public static PackedBase Initial => new(0, true, 0, true);

    /// <summary>Splits the 32-bit wire value.</summary>
    public static PackedBase Decode(uint value) => new(
        (ushort)(value & PositionMask),
        ((value >> WrapBit) & 1) != 0,
        (ushort)((value >> 16) & PositionMask),
        ((value >> (16 + WrapBit)) & 1) != 0);

    /// <summary>The 32-bit wire value.</summary>
    public uint Encode() =>
        (AvailPosition & PositionMask) | (AvailWrapCounter ? 1u << WrapBit : 0)
        | ((UsedPosition & PositionMask) << 16) | (UsedWrapCounter ? 1u << (16 + WrapBit) : 0);
}
