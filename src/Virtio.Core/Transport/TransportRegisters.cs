using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Core.Transport;

/// <summary>
/// What virtio-mmio and virtio-pci registers share: 64-bit values the driver writes as two 32-bit halves
/// (queue areas, driver features) and 64-bit feature sets read as 32-bit words by a selector.
/// </summary>
internal static class TransportRegisters
{
    /// <summary>The 32-bit word <paramref name="select"/> of <paramref name="features"/>: 0 low, 1 high, 0 beyond.</summary>
    public static uint FeatureWord(ulong features, uint select) => select switch
    {
        0 => (uint)features,
        1 => (uint)(features >> 32),
        _ => 0,
    };

    /// <summary>Stages word <paramref name="select"/> of the driver's features; words beyond 1 are ignored.</summary>
    public static void WriteDriverFeatureWord(VirtioDevice device, uint select, uint value)
    {
        if (select > 1)
        {
            return;
        }

        int shift = (int)select * 32;
        ulong staged = device.StagedDriverFeatures;
        staged = (staged & ~(0xFFFF_FFFFUL << shift)) | ((ulong)value << shift);
        device.WriteDriverFeatures(staged);
    }

    /// <summary>The current guest address of one of <paramref name="queue"/>'s areas.</summary>
    public static ulong AreaAddress(SplitVirtqueue queue, QueueArea area) => area switch
    {
        QueueArea.Descriptor => queue.DescriptorTable.Value,
        QueueArea.Driver => queue.AvailRing.Value,
        _ => queue.UsedRing.Value,
    };

    /// <summary>Sets the low or high half of one of <paramref name="queue"/>'s area addresses.</summary>
    public static void SetAreaHalf(SplitVirtqueue queue, QueueArea area, uint value, bool high)
    {
        ulong current = AreaAddress(queue, area);
        ulong updated = high
            ? (current & 0xFFFF_FFFFUL) | ((ulong)value << 32)
            : (current & 0xFFFF_FFFF_0000_0000UL) | value;
        var address = new GuestAddress(updated);
        switch (area)
        {
            case QueueArea.Descriptor: queue.DescriptorTable = address; break;
            case QueueArea.Driver: queue.AvailRing = address; break;
            default: queue.UsedRing = address; break;
        }
    }
}
