using System;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;

namespace Virtio.Core.Transport.Pci;

/// <summary>
/// One PCI function (a type-0 configuration header with its BARs) in front of a <see cref="VirtioDevice"/>:
/// the modern virtio-pci transport of virtio 1.2 §4.1, with MSI-X and the INTx fallback. The embedder
/// forwards the guest's configuration-space accesses (<see cref="ReadConfigSpace"/>,
/// <see cref="WriteConfigSpace"/>) and its memory accesses (<see cref="TryReadMemory"/>,
/// <see cref="TryWriteMemory"/>), and supplies the INTx line and the MSI-X delivery.
/// </summary>
/// <remarks>
/// <para>BAR layout (docs/pci.md). BAR 0 (<see cref="CapabilityBar"/>), a 32-bit non-prefetchable memory
/// BAR, holds the virtio structures, each at the start of its own 4 KiB page: common configuration at
/// 0x0000, ISR at 0x1000, device configuration at 0x2000, the doorbells from 0x3000. BAR 1
/// (<see cref="MsiXBar"/>), a 32-bit memory BAR, holds the MSI-X table at 0 and the PBA on the next 4 KiB
/// page after it. The MSI-X structures sit in a BAR of their own, as QEMU lays them out, so an embedder
/// can trap or map that BAR without touching the doorbells, and the two 32-bit BARs fit a 32-bit MMIO
/// hole below 4 GiB, which is what firmware-less VMMs usually have.</para>
/// <para>Threads: configuration and memory accesses come from one vCPU thread at a time. The device raises
/// interrupts from its I/O threads concurrently with them: the ISR, the MSI-X pending bits and masks are
/// kept under one lock, so a raise and a vCPU's read-to-clear or mask never lose an interrupt.</para>
/// <para>The guest is hostile: accesses of the wrong width or alignment, writes of read-only fields,
/// queue configuration while the queue is enabled, and the like are ignored and logged once per kind
/// (event 1501, counter virtio.pci.ignored_accesses); nothing a guest writes makes a call throw.</para>
/// </remarks>
public sealed class VirtioPciFunction
{
    /// <summary>The PCI Vendor ID of every virtio device (virtio 1.2 §4.1.2).</summary>
    public const ushort VendorId = 0x1AF4;

    /// <summary>A modern virtio device's PCI Device ID is this plus its virtio device ID (virtio 1.2 §4.1.2).</summary>
    public const ushort DeviceIdBase = 0x1040;

    /// <summary>The Revision ID of a modern (non-transitional) device: 1.</summary>
    public const byte RevisionId = 1;

    /// <summary>VIRTIO_MSI_NO_VECTOR: no MSI-X vector (virtio 1.2 §4.1.5.1.2).</summary>
    public const ushort NoVector = 0xFFFF;

    /// <summary>The BAR holding the common, ISR, device and notify structures.</summary>
    public const int CapabilityBar = 0;

    /// <summary>The BAR holding the MSI-X table and PBA (absent without MSI-X).</summary>
    public const int MsiXBar = 1;

    /// <summary>The configuration space's size: offsets from 0 to 4095 are accepted; from 256 on they read zero.</summary>
    public const int ConfigSpaceSize = 4096;

    /// <summary>Puts a PCI function in front of <paramref name="device"/>.</summary>
    /// <param name="device">The device; its <see cref="VirtioDevice.GuestNotifier"/> is set to this function's interrupt logic.</param>
    /// <param name="intxLine">
    /// The INTx (INTA#) line, used while MSI-X is disabled. It is a level: <see cref="IGuestNotifier.Notify"/>
    /// asserts it (an irqfd with a resample fd on KVM); the guest's ISR read deasserts it, and the embedder's
    /// resample handler re-asserts it while <see cref="IsIntxAsserted"/> is true.
    /// </param>
    /// <param name="msiX">Where MSI-X vectors go; null gives a function without the MSI-X capability (INTx only).</param>
    /// <param name="options">The embedder's choices; defaults when null.</param>
    /// <param name="logger">Where ignored accesses are logged; none by default.</param>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public VirtioPciFunction(VirtioDevice device, IGuestNotifier intxLine, IMsiXDelivery? msiX, VirtioPciFunctionOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(intxLine);
        Device = device;
        throw new NotImplementedException();
    }

    /// <summary>
    /// Raised on the thread that wrote the configuration space when the address range a BAR decodes
    /// changed: the guest moved it, or turned Memory Space Enable on or off. The embedder re-reads
    /// <see cref="TryGetBarAddress"/> and <see cref="TryGetNotifyAddress"/> and moves what it registered
    /// (ioeventfds, its bus's dispatch). Not raised while decoding is off.
    /// </summary>
    public event Action<VirtioPciFunction>? BarsChanged;

    /// <summary>The device behind the function.</summary>
    public VirtioDevice Device { get; }

    /// <summary>The PCI Device ID: <see cref="DeviceIdBase"/> plus the virtio device ID.</summary>
    public ushort PciDeviceId { get; }

    /// <summary>The 24-bit class code (base class, subclass, programming interface) for the device type.</summary>
    public uint ClassCode { get; }

    /// <summary>The notify capability's <c>notify_off_multiplier</c>.</summary>
    public uint NotifyOffMultiplier { get; }

    /// <summary>The number of MSI-X table entries; 0 for a function without MSI-X.</summary>
    public int MsiXVectorCount { get; }

    /// <summary>
    /// The Interrupt Line register (0x3C): the embedder sets the INTx routing it chose (the GSI/IRQ); the
    /// guest's firmware may overwrite it. Any thread.
    /// </summary>
    public byte InterruptLine { get => throw new NotImplementedException(); set => throw new NotImplementedException(); }

    /// <summary>The ISR status byte (bit 0 queue interrupt, bit 1 configuration change) without clearing it. Any thread.</summary>
    public byte InterruptStatus => throw new NotImplementedException();

    /// <summary>
    /// Whether INTx is asserted: MSI-X disabled, Interrupt Disable clear and an ISR bit set. The embedder's
    /// resample handler (after the guest's EOI) re-asserts the line while this is true. Any thread.
    /// </summary>
    public bool IsIntxAsserted => throw new NotImplementedException();

    /// <summary>Whether the guest set MSI-X Enable (interrupts go to MSI-X vectors, not INTx). Any thread.</summary>
    public bool IsMsiXEnabled => throw new NotImplementedException();

    /// <summary>Whether the command register's Memory Space Enable is set (the BARs decode).</summary>
    public bool IsMemorySpaceEnabled => throw new NotImplementedException();

    /// <summary>Whether the command register's Bus Master Enable is set (the device may use guest memory and send MSI-X).</summary>
    public bool IsBusMasterEnabled => throw new NotImplementedException();

    /// <summary>
    /// Called for a doorbell write instead of processing the queue on the vCPU thread; return true when
    /// the notification was taken (signalled to an I/O thread). When null or returning false, the device
    /// processes the queue synchronously. Same contract as <see cref="VirtioMmioTransport.QueueNotifyHandler"/>.
    /// </summary>
    public Func<ushort, bool>? QueueNotifyHandler { get; set; }

    /// <summary>Handles a guest read of configuration space.</summary>
    /// <param name="offset">The offset in the function's configuration space (0 to 4095).</param>
    /// <param name="data">Receives the little-endian value (1, 2 or 4 bytes, naturally aligned); zero for ignored accesses.</param>
    public void ReadConfigSpace(int offset, Span<byte> data) => throw new NotImplementedException();

    /// <summary>Handles a guest write of configuration space.</summary>
    /// <param name="offset">The offset in the function's configuration space (0 to 4095).</param>
    /// <param name="data">The little-endian value (1, 2 or 4 bytes, naturally aligned).</param>
    public void WriteConfigSpace(int offset, ReadOnlySpan<byte> data) => throw new NotImplementedException();

    /// <summary>Handles a guest memory read at guest-physical <paramref name="address"/> if one of this function's decoding BARs holds it.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="data">Receives the little-endian value; zero for ignored accesses.</param>
    /// <returns>False when no enabled BAR of this function holds the address (the access is someone else's).</returns>
    public bool TryReadMemory(ulong address, Span<byte> data) => throw new NotImplementedException();

    /// <summary>Handles a guest memory write at guest-physical <paramref name="address"/> if one of this function's decoding BARs holds it.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="data">The little-endian value.</param>
    /// <returns>False when no enabled BAR of this function holds the address.</returns>
    public bool TryWriteMemory(ulong address, ReadOnlySpan<byte> data) => throw new NotImplementedException();

    /// <summary>The size of BAR <paramref name="index"/> in bytes; 0 for a BAR the function does not implement.</summary>
    /// <param name="index">0 to 5.</param>
    /// <returns>The size, a power of two.</returns>
    public ulong GetBarSize(int index) => throw new NotImplementedException();

    /// <summary>Where BAR <paramref name="index"/> decodes now.</summary>
    /// <param name="index">0 to 5.</param>
    /// <param name="address">The BAR's base address, when it decodes.</param>
    /// <returns>False when the BAR is not implemented or Memory Space Enable is clear.</returns>
    public bool TryGetBarAddress(int index, out ulong address) => throw new NotImplementedException();

    /// <summary>
    /// The guest-physical doorbell address of queue <paramref name="queueIndex"/>: the notify region's
    /// address plus queue_notify_off × <see cref="NotifyOffMultiplier"/>. The guest writes the queue index
    /// there as 16 bits (4 bytes are accepted too). With multiplier 0 every queue has the same address.
    /// </summary>
    /// <param name="queueIndex">The queue.</param>
    /// <param name="address">The doorbell address, when BAR 0 decodes.</param>
    /// <returns>False when the queue does not exist or BAR 0 does not decode.</returns>
    public bool TryGetNotifyAddress(ushort queueIndex, out ulong address) => throw new NotImplementedException();

    /// <summary>
    /// A PCI reset of the function (RST#, a bus or function-level reset): the configuration header
    /// returns to its power-on state (command 0, BARs 0, MSI-X disabled, every vector masked) and the
    /// device resets. Called by the embedder, on the thread that forwards configuration accesses.
    /// </summary>
    public void ResetFunction() => throw new NotImplementedException();

    private void RaiseBarsChanged() => BarsChanged?.Invoke(this);
}
