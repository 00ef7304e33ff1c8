using System;
using Virtio.Core.Devices;
using Virtio.Core.Transport.Pci;

namespace Virtio.Testing;

/// <summary>
/// Drives a <see cref="VirtioPciFunction"/> the way Linux's virtio_pci driver probes a modern device
/// (virtio 1.2 §4.1.4, §4.1.5, §3.1.1): assigns and enables the BARs, walks the capability list to find
/// the common, notify, ISR and device configuration structures, negotiates features, sets up queues
/// (with MSI-X vectors when MSI-X is on), sets DRIVER_OK and rings doorbells.
/// </summary>
/// <remarks>Calls go straight to the function's configuration and memory handlers on the calling thread,
/// as a vCPU's exits would: one thread at a time.</remarks>
/// <param name="function">The PCI function to drive.</param>
public sealed class PciDriver(VirtioPciFunction function)
{
    /// <summary>The function driven.</summary>
    public VirtioPciFunction Function { get; } = function;

    /// <summary>The guest-physical address of the common configuration structure (after <see cref="Probe"/>).</summary>
    public ulong CommonConfigAddress { get; private set; }

    /// <summary>The guest-physical address of the notify region (after <see cref="Probe"/>).</summary>
    public ulong NotifyBaseAddress { get; private set; }

    /// <summary>The notify capability's notify_off_multiplier (after <see cref="Probe"/>).</summary>
    public uint NotifyOffMultiplier { get; private set; }

    /// <summary>The guest-physical address of the ISR status byte (after <see cref="Probe"/>).</summary>
    public ulong IsrAddress { get; private set; }

    /// <summary>The guest-physical address of the device configuration (after <see cref="Probe"/>).</summary>
    public ulong DeviceConfigAddress { get; private set; }

    /// <summary>The configuration-space offset of the MSI-X capability; 0 when the function has none (after <see cref="Probe"/>).</summary>
    public int MsiXCapabilityOffset { get; private set; }

    /// <summary>The configuration-space offset of the PCI configuration access capability; 0 when absent (after <see cref="Probe"/>).</summary>
    public int PciConfigAccessOffset { get; private set; }

    /// <summary>Reads <paramref name="width"/> bytes (1, 2 or 4) of configuration space.</summary>
    /// <param name="offset">The offset.</param>
    /// <param name="width">1, 2 or 4.</param>
    /// <returns>The little-endian value.</returns>
    public uint ReadConfig(int offset, int width) => throw new NotImplementedException();

    /// <summary>Writes <paramref name="width"/> bytes (1, 2 or 4) of configuration space.</summary>
    /// <param name="offset">The offset.</param>
    /// <param name="width">1, 2 or 4.</param>
    /// <param name="value">The value; its low <paramref name="width"/> bytes are written.</param>
    public void WriteConfig(int offset, int width, uint value) => throw new NotImplementedException();

    /// <summary>Reads guest memory the function decodes.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="width">1, 2, 4 or 8.</param>
    /// <returns>The little-endian value.</returns>
    /// <exception cref="InvalidOperationException">No BAR of the function holds the address.</exception>
    public ulong ReadMemory(ulong address, int width) => throw new NotImplementedException();

    /// <summary>Writes guest memory the function decodes.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="width">1, 2, 4 or 8.</param>
    /// <param name="value">The value; its low <paramref name="width"/> bytes are written.</param>
    /// <exception cref="InvalidOperationException">No BAR of the function holds the address.</exception>
    public void WriteMemory(ulong address, int width, ulong value) => throw new NotImplementedException();

    /// <summary>
    /// Enumerates the function as firmware and Linux do: checks vendor and device IDs, sizes every BAR and
    /// places each at the next address aligned to its size from <paramref name="barBase"/>, enables
    /// memory space and bus mastering, and walks the capability list (virtio_pci_modern_dev.c's order:
    /// the first capability of each virtio cfg_type whose BAR is implemented).
    /// </summary>
    /// <param name="barBase">Where BAR placement starts (an address in a 32-bit MMIO hole).</param>
    /// <exception cref="InvalidOperationException">Not a modern virtio-pci function, or a capability is missing or malformed.</exception>
    public void Probe(ulong barBase = 0xE000_0000) => throw new NotImplementedException();

    /// <summary>Enables MSI-X and programs table entry i with <paramref name="messageFor"/>(i), unmasked, for every entry.</summary>
    /// <param name="messageFor">The message of each vector.</param>
    /// <exception cref="InvalidOperationException">The function has no MSI-X capability.</exception>
    public void EnableMsiX(Func<ushort, MsiMessage> messageFor) => throw new NotImplementedException();

    /// <summary>Writes MSI-X table entry <paramref name="vector"/>: address, data and its Mask bit.</summary>
    /// <param name="vector">The entry.</param>
    /// <param name="message">Its message.</param>
    /// <param name="masked">Its Mask bit.</param>
    public void WriteMsiXEntry(ushort vector, MsiMessage message, bool masked) => throw new NotImplementedException();

    /// <summary>Sets or clears the MSI-X capability's Function Mask bit.</summary>
    /// <param name="masked">The bit's new value.</param>
    public void SetMsiXFunctionMask(bool masked) => throw new NotImplementedException();

    /// <summary>Reads the Pending Bit Array's bit of <paramref name="vector"/>.</summary>
    /// <param name="vector">The entry.</param>
    /// <returns>Whether the vector is pending.</returns>
    public bool IsMsiXPending(ushort vector) => throw new NotImplementedException();

    /// <summary>Reads a common configuration field.</summary>
    /// <param name="offset">The field (<see cref="VirtioPciCommonConfig"/>).</param>
    /// <param name="width">Its width: 1, 2 or 4.</param>
    /// <returns>Its value.</returns>
    public uint ReadCommon(int offset, int width) => throw new NotImplementedException();

    /// <summary>Writes a common configuration field.</summary>
    /// <param name="offset">The field (<see cref="VirtioPciCommonConfig"/>).</param>
    /// <param name="width">Its width: 1, 2 or 4.</param>
    /// <param name="value">The value.</param>
    public void WriteCommon(int offset, int width, uint value) => throw new NotImplementedException();

    /// <summary>The device_status field.</summary>
    public DeviceStatus Status
    {
        get => throw new NotImplementedException();
        set => throw new NotImplementedException();
    }

    /// <summary>The 64 device feature bits, read through device_feature_select 0 and 1.</summary>
    /// <returns>The features the device offers.</returns>
    public ulong ReadDeviceFeatures() => throw new NotImplementedException();

    /// <summary>Writes the 64 driver feature bits through driver_feature_select 0 and 1.</summary>
    /// <param name="features">The features the driver accepts.</param>
    public void WriteDriverFeatures(ulong features) => throw new NotImplementedException();

    /// <summary>
    /// Resets, negotiates <paramref name="wanted"/> ∩ offered features, assigns config_msix_vector 0 when
    /// MSI-X is enabled, sets up queue i with queues[i] (MSI-X vector i + 1 when enabled), then sets DRIVER_OK.
    /// </summary>
    /// <param name="wanted">The features the driver would use.</param>
    /// <param name="queues">One driver per queue, from queue 0.</param>
    /// <returns>The negotiated features.</returns>
    /// <exception cref="InvalidOperationException">The device refused FEATURES_OK, a queue or a vector.</exception>
    public ulong Initialize(ulong wanted, params GuestDriver[] queues) => throw new NotImplementedException();

    /// <summary>Selects queue <paramref name="index"/>, writes its size, vector and ring addresses, and enables it.</summary>
    /// <param name="index">The queue.</param>
    /// <param name="driver">The driver whose rings the queue uses.</param>
    /// <param name="msixVector">The queue's MSI-X vector, or <see cref="VirtioPciFunction.NoVector"/>.</param>
    /// <exception cref="InvalidOperationException">The queue is enabled already, too small, refused the vector or did not enable.</exception>
    public void SetUpQueue(ushort index, GuestDriver driver, ushort msixVector = VirtioPciFunction.NoVector) => throw new NotImplementedException();

    /// <summary>Rings queue <paramref name="index"/>'s doorbell (a 16-bit write of the index at its notify address).</summary>
    /// <param name="index">The queue.</param>
    public void Notify(ushort index) => throw new NotImplementedException();

    /// <summary>Reads the ISR status byte, which clears it, as an INTx handler does.</summary>
    /// <returns>The bits that were set.</returns>
    public byte ReadIsr() => throw new NotImplementedException();

    /// <summary>Reads device configuration through the device configuration structure.</summary>
    /// <param name="offset">The offset in the device configuration.</param>
    /// <param name="width">1, 2 or 4.</param>
    /// <returns>The value.</returns>
    public uint ReadDeviceConfig(int offset, int width) => throw new NotImplementedException();
}
