namespace Virtio.Core.Queues;

/// <summary>
/// Where the fields of a packed virtqueue lie (virtio 1.2 §2.8): the descriptor ring of 16-byte
/// descriptors (address, length, buffer ID, flags) and the two 4-byte event suppression
/// structures (off_wrap, flags). The one place these numbers live.
/// </summary>
internal static class PackedRingLayout
{
    /// <summary>Bytes per descriptor (struct pvirtq_desc).</summary>
    public const int DescriptorSize = 16;

    /// <summary>Offset of the 32-bit length in a descriptor.</summary>
    public const int LengthOffset = 8;

    /// <summary>Offset of the 16-bit buffer ID in a descriptor.</summary>
    public const int IdOffset = 12;

    /// <summary>Offset of the 16-bit flags in a descriptor.</summary>
    public const int FlagsOffset = 14;

    /// <summary>Alignment of the descriptor ring (virtio 1.2 §2.8.10.1, "Packed Virtqueue Part Alignment").</summary>
    public const uint DescriptorRingAlignment = 16;

    /// <summary>Alignment of each event suppression structure.</summary>
    public const uint EventSuppressionAlignment = 4;

    /// <summary>Bytes of an event suppression structure (struct pvirtq_event_suppress).</summary>
    public const int EventSuppressionSize = 4;

    /// <summary>Offset of off_wrap in an event suppression structure.</summary>
    public const int EventOffWrapOffset = 0;

    /// <summary>Offset of flags in an event suppression structure.</summary>
    public const int EventFlagsOffset = 2;

    /// <summary>VIRTQ_DESC_F_AVAIL (bit 7).</summary>
    public const ushort AvailFlag = 1 << 7;

    /// <summary>VIRTQ_DESC_F_USED (bit 15).</summary>
    public const ushort UsedFlag = 1 << 15;

    /// <summary>RING_EVENT_FLAGS_ENABLE: notify on every buffer.</summary>
    public const ushort EventFlagsEnable = 0;

    /// <summary>RING_EVENT_FLAGS_DISABLE: do not notify.</summary>
    public const ushort EventFlagsDisable = 1;

    /// <summary>RING_EVENT_FLAGS_DESC: notify when the descriptor named by off_wrap is reached (VIRTIO_F_EVENT_IDX only).</summary>
    public const ushort EventFlagsDesc = 2;

    /// <summary>The largest packed queue size (virtio 1.2 §2.8: 2^15, so a position fits in 15 bits of off_wrap).</summary>
    public const ushort MaxQueueSize = 32768;

    /// <summary>Byte offset of descriptor <paramref name="position"/> in the ring.</summary>
    /// <param name="position">A ring position below the queue size.</param>
    /// <returns>The byte offset.</returns>
    public static int DescriptorOffset(int position) => position * DescriptorSize;

    /// <summary>off_wrap for a ring position and wrap counter: bits 0-14 the position, bit 15 the counter.</summary>
    /// <param name="position">A ring position below the queue size.</param>
    /// <param name="wrap">The wrap counter.</param>
    /// <returns>The encoded value.</returns>
    public static ushort OffWrap(ushort position, bool wrap) => (ushort)((position & 0x7FFF) | (wrap ? 0x8000 : 0));

    /// <summary>
    /// Whether descriptor flags say "available" in the lap whose wrap counter is <paramref name="wrap"/>:
    /// AVAIL equals the counter and USED differs from it (virtio 1.2 §2.8.1).
    /// </summary>
    /// <param name="flags">The descriptor's flags.</param>
    /// <param name="wrap">The wrap counter of the lap the descriptor's position is in.</param>
    /// <returns>True when the driver made the descriptor available in that lap.</returns>
    public static bool IsAvailable(ushort flags, bool wrap) =>
        ((flags & AvailFlag) != 0) == wrap && ((flags & UsedFlag) != 0) != wrap;

    /// <summary>The flags of a used descriptor written in the lap of <paramref name="wrap"/>: AVAIL and USED both equal to it.</summary>
    /// <param name="wrap">The device's used wrap counter.</param>
    /// <returns>The AVAIL and USED bits.</returns>
    public static ushort UsedFlags(bool wrap) => wrap ? (ushort)(AvailFlag | UsedFlag) : (ushort)0;
}
