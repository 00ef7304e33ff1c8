namespace Virtio.Core.Transport.Pci;

/// <summary>
/// One message-signalled interrupt as the guest programmed it into an MSI-X table entry (PCI Local Bus
/// 3.0 §6.8.2): the address the device writes and the data it writes there. On x86 the address is
/// 0xFEExxxxx with the destination APIC in bits 12-19 and the data holds the vector in bits 0-7.
/// </summary>
/// <param name="Address">The 64-bit message address (the table entry's Message Address and Upper Address).</param>
/// <param name="Data">The 32-bit message data.</param>
public readonly record struct MsiMessage(ulong Address, uint Data);
