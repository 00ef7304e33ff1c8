using System.Numerics;

namespace Virtio.Core.Transport.Pci;

/// <summary>
/// Where everything of one virtio-pci function lives: the capabilities in configuration space and the
/// structures in the BARs (docs/pci.md has the tables). One instance per function, since the notify
/// region and the MSI-X table grow with the queues and vectors.
/// </summary>
internal sealed class VirtioPciLayout
{
    /// <summary>A 4 KiB page: each structure starts on its own, so an embedder can map or trap them apart.</summary>
    public const int Page = 0x1000;

    // BAR 0.
    public const int CommonOffset = 0x0000;
    public const int IsrOffset = 0x1000;
    public const int DeviceOffset = 0x2000;
    public const int NotifyOffset = 0x3000;

    // Configuration space: the capability list, from 0x40 (after the type-0 header).
    public const int CommonCap = 0x40;
    public const int NotifyCap = 0x50;
    public const int IsrCap = 0x64;
    public const int DeviceCap = 0x74;
    public const int PciCfgCap = 0x84;
    public const int MsiXCap = 0x98;

    /// <summary>struct virtio_pci_cap's length; the notify and PCI cfg capabilities add 4 bytes.</summary>
    public const int VirtioCapLength = 16;
    public const int MsiXCapLength = 12;

    // Inside struct virtio_pci_cap (virtio 1.2 §4.1.4).
    public const int CapVendor = 0;
    public const int CapNext = 1;
    public const int CapLen = 2;
    public const int CapCfgType = 3;
    public const int CapBar = 4;
    public const int CapId = 5;
    public const int CapOffset = 8;
    public const int CapLength = 12;
    public const int NotifyMultiplier = 16;
    public const int PciCfgData = 16;

    // Inside the MSI-X capability (PCI 3.0 §6.8.2).
    public const int MsiXControl = 2;
    public const int MsiXTable = 4;
    public const int MsiXPba = 8;
    public const ushort MsiXEnable = 1 << 15;
    public const ushort MsiXFunctionMask = 1 << 14;

    public const byte VendorSpecificCapId = 0x09;
    public const byte MsiXCapId = 0x11;

    public VirtioPciLayout(int queueCount, uint notifyOffMultiplier, int deviceConfigLength, int vectorCount)
    {
        // §4.1.4.4.1: cap.length >= queue_notify_off * multiplier + 2 for every queue; 4 leaves room for a
        // 32-bit doorbell write when the multiplier is 0 or at least 4.
        NotifyLength = notifyOffMultiplier == 0 ? 4u : (uint)(((ulong)(queueCount - 1) * notifyOffMultiplier) + System.Math.Max(2u, System.Math.Min(4u, notifyOffMultiplier)));
        DeviceConfigLength = deviceConfigLength;
        Bar0Size = BitOperations.RoundUpToPowerOf2((ulong)NotifyOffset + RoundUpToPage(NotifyLength));
        VectorCount = vectorCount;
        if (vectorCount > 0)
        {
            TableLength = vectorCount * VirtioPciInterrupts.EntrySize;
            PbaOffset = (int)RoundUpToPage((uint)TableLength);
            PbaLength = (vectorCount + 63) / 64 * 8;
            Bar1Size = BitOperations.RoundUpToPowerOf2((ulong)PbaOffset + RoundUpToPage((uint)PbaLength));
        }
    }

    public uint NotifyLength { get; }

    public int DeviceConfigLength { get; }

    public ulong Bar0Size { get; }

    public int VectorCount { get; }

    public int TableLength { get; }

    public int PbaOffset { get; }

    public int PbaLength { get; }

    /// <summary>0 without MSI-X: the BAR is not implemented.</summary>
    public ulong Bar1Size { get; }

    private static ulong RoundUpToPage(uint length) => ((ulong)length + Page - 1) & ~(ulong)(Page - 1);
}
