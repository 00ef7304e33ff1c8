namespace Virtio.Core.Transport.Pci;

/// <summary>The embedder's choices for a <see cref="VirtioPciFunction"/>; every one has a default.</summary>
public sealed class VirtioPciFunctionOptions
{
    /// <summary>
    /// notify_off_multiplier (virtio 1.2 §4.1.4.4): 4 by default, so each queue has its own doorbell
    /// address (queue i at the notify region's start + 4 i, the queue told apart by the address); 0 puts
    /// every queue's doorbell at one address, told apart by the value written (the queue index). Any
    /// other value must be a power of two from 2 to 4096.
    /// </summary>
    public uint NotifyOffMultiplier { get; init; } = 4;

    /// <summary>
    /// How many MSI-X table entries the function has, from 1 to 2048; null (the default) gives one per
    /// queue plus one for configuration changes. Ignored when the function has no MSI-X capability
    /// (no <see cref="IMsiXDelivery"/>).
    /// </summary>
    public int? MsiXVectorCount { get; init; }

    /// <summary>The Subsystem Vendor ID register: 0x1AF4 by default.</summary>
    public ushort SubsystemVendorId { get; init; } = VirtioPciFunction.VendorId;

    /// <summary>The Subsystem ID register: 0x1100 by default (what QEMU reports for its modern devices).</summary>
    public ushort SubsystemId { get; init; } = 0x1100;

    /// <summary>
    /// The length the device configuration capability reports, from 1 to 4096 bytes: 256 by default,
    /// enough for every device of this library; bytes past the device's own configuration read as zero.
    /// </summary>
    public int DeviceConfigLength { get; init; } = 0x100;
}
