using System;
using System.Buffers.Binary;
using System.Collections.Generic;
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
    private readonly ulong[] _bars = new ulong[6];
    private readonly Dictionary<ushort, ushort> _notifyOffsets = new();
    private ulong _msiXTable;
    private ulong _msiXPba;

    /// <summary>The function driven.</summary>
    public VirtioPciFunction Function { get; } = function;

    /// <summary>The MSI-X table's entries; 0 without MSI-X (after <see cref="Probe"/>).</summary>
    public int MsiXTableSize { get; private set; }

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
    public uint ReadConfig(int offset, int width)
    {
        Span<byte> data = stackalloc byte[4];
        Function.ReadConfigSpace(offset, data[..width]);
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    /// <summary>Writes <paramref name="width"/> bytes (1, 2 or 4) of configuration space.</summary>
    /// <param name="offset">The offset.</param>
    /// <param name="width">1, 2 or 4.</param>
    /// <param name="value">The value; its low <paramref name="width"/> bytes are written.</param>
    public void WriteConfig(int offset, int width, uint value)
    {
        Span<byte> data = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(data, value);
        Function.WriteConfigSpace(offset, data[..width]);
    }

    /// <summary>Reads guest memory the function decodes.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="width">1, 2, 4 or 8.</param>
    /// <returns>The little-endian value.</returns>
    /// <exception cref="InvalidOperationException">No BAR of the function holds the address.</exception>
    public ulong ReadMemory(ulong address, int width)
    {
        Span<byte> data = stackalloc byte[8];
        data.Clear();
        if (!Function.TryReadMemory(address, data[..width]))
        {
            throw new InvalidOperationException($"No BAR of the function decodes 0x{address:x}.");
        }

        return BinaryPrimitives.ReadUInt64LittleEndian(data);
    }

    /// <summary>Writes guest memory the function decodes.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="width">1, 2, 4 or 8.</param>
    /// <param name="value">The value; its low <paramref name="width"/> bytes are written.</param>
    /// <exception cref="InvalidOperationException">No BAR of the function holds the address.</exception>
    public void WriteMemory(ulong address, int width, ulong value)
    {
        Span<byte> data = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(data, value);
        if (!Function.TryWriteMemory(address, data[..width]))
        {
            throw new InvalidOperationException($"No BAR of the function decodes 0x{address:x}.");
        }
    }

    /// <summary>
    /// Enumerates the function as firmware and Linux do: checks vendor and device IDs, sizes every BAR and
    /// places each at the next address aligned to its size from <paramref name="barBase"/>, enables
    /// memory space and bus mastering, and walks the capability list (virtio_pci_modern_dev.c's order:
    /// the first capability of each virtio cfg_type whose BAR is implemented).
    /// </summary>
    /// <param name="barBase">Where BAR placement starts (an address in a 32-bit MMIO hole).</param>
    /// <exception cref="InvalidOperationException">Not a modern virtio-pci function, or a capability is missing or malformed.</exception>
    public void Probe(ulong barBase = 0xE000_0000)
    {
        if (ReadConfig(0x00, 2) != VirtioPciFunction.VendorId)
        {
            throw new InvalidOperationException("Not a virtio device: vendor ID is not 0x1AF4.");
        }

        uint deviceId = ReadConfig(0x02, 2);
        if (deviceId is < 0x1040 or > 0x107F)
        {
            throw new InvalidOperationException($"Device ID 0x{deviceId:x4} is not a modern virtio device's.");
        }

        // Firmware's BAR sizing: decoding off, all ones, read the size mask back, place, decoding on.
        WriteConfig(0x04, 2, ReadConfig(0x04, 2) & ~0x7u);
        ulong next = barBase;
        for (int bar = 0; bar < 6; bar++)
        {
            int offset = 0x10 + (4 * bar);
            uint original = ReadConfig(offset, 4);
            WriteConfig(offset, 4, uint.MaxValue);
            uint mask = ReadConfig(offset, 4);
            WriteConfig(offset, 4, original);
            if ((mask & 1) != 0 || (mask & ~0xFu) == 0)
            {
                continue; // an I/O BAR (none here) or not implemented
            }

            bool is64 = (mask & 0x6) == 0x4;
            ulong size = ~(ulong)(mask & ~0xFu) + 1 & 0xFFFF_FFFF;
            ulong address = (next + size - 1) & ~(size - 1);
            WriteConfig(offset, 4, (uint)address);
            if (is64)
            {
                WriteConfig(offset + 4, 4, (uint)(address >> 32));
                bar++;
            }

            _bars[bar - (is64 ? 1 : 0)] = address;
            next = address + size;
        }

        WriteConfig(0x04, 2, ReadConfig(0x04, 2) | 0x6); // Memory Space and Bus Master Enable
        WalkCapabilities();
    }

    /// <summary>Enables MSI-X and programs table entry i with <paramref name="messageFor"/>(i), unmasked, for every entry.</summary>
    /// <param name="messageFor">The message of each vector.</param>
    /// <exception cref="InvalidOperationException">The function has no MSI-X capability.</exception>
    public void EnableMsiX(Func<ushort, MsiMessage> messageFor)
    {
        ArgumentNullException.ThrowIfNull(messageFor);
        RequireMsiX();

        // As Linux's msix_capability_init: enable with the function masked, program the entries, unmask.
        int control = MsiXCapabilityOffset + 2;
        WriteConfig(control, 2, ReadConfig(control, 2) | 0xC000);
        for (ushort vector = 0; vector < MsiXTableSize; vector++)
        {
            WriteMsiXEntry(vector, messageFor(vector), masked: false);
        }

        SetMsiXFunctionMask(false);
    }

    /// <summary>Writes MSI-X table entry <paramref name="vector"/>: address, data and its Mask bit.</summary>
    /// <param name="vector">The entry.</param>
    /// <param name="message">Its message.</param>
    /// <param name="masked">Its Mask bit.</param>
    public void WriteMsiXEntry(ushort vector, MsiMessage message, bool masked)
    {
        RequireMsiX();
        ulong entry = _msiXTable + (16UL * vector);
        WriteMemory(entry + 12, 4, 1); // mask while the message changes
        WriteMemory(entry, 4, (uint)message.Address);
        WriteMemory(entry + 4, 4, (uint)(message.Address >> 32));
        WriteMemory(entry + 8, 4, message.Data);
        WriteMemory(entry + 12, 4, masked ? 1u : 0u);
    }

    /// <summary>Sets or clears the MSI-X capability's Function Mask bit.</summary>
    /// <param name="masked">The bit's new value.</param>
    public void SetMsiXFunctionMask(bool masked)
    {
        RequireMsiX();
        int control = MsiXCapabilityOffset + 2;
        uint value = ReadConfig(control, 2);
        WriteConfig(control, 2, masked ? value | 0x4000 : value & ~0x4000u);
    }

    /// <summary>Reads the Pending Bit Array's bit of <paramref name="vector"/>.</summary>
    /// <param name="vector">The entry.</param>
    /// <returns>Whether the vector is pending.</returns>
    public bool IsMsiXPending(ushort vector)
    {
        RequireMsiX();
        ulong dword = ReadMemory(_msiXPba + (4UL * (ulong)(vector / 32)), 4);
        return (dword & (1UL << (vector % 32))) != 0;
    }

    /// <summary>Reads a common configuration field.</summary>
    /// <param name="offset">The field (<see cref="VirtioPciCommonConfig"/>).</param>
    /// <param name="width">Its width: 1, 2 or 4.</param>
    /// <returns>Its value.</returns>
    public uint ReadCommon(int offset, int width) => (uint)ReadMemory(CommonConfigAddress + (ulong)offset, width);

    /// <summary>Writes a common configuration field.</summary>
    /// <param name="offset">The field (<see cref="VirtioPciCommonConfig"/>).</param>
    /// <param name="width">Its width: 1, 2 or 4.</param>
    /// <param name="value">The value.</param>
    public void WriteCommon(int offset, int width, uint value) => WriteMemory(CommonConfigAddress + (ulong)offset, width, value);

    /// <summary>The device_status field.</summary>
    public DeviceStatus Status
    {
        get => (DeviceStatus)ReadCommon(VirtioPciCommonConfig.DeviceStatus, 1);
        set => WriteCommon(VirtioPciCommonConfig.DeviceStatus, 1, (uint)value);
    }

    /// <summary>The 64 device feature bits, read through device_feature_select 0 and 1.</summary>
    /// <returns>The features the device offers.</returns>
    public ulong ReadDeviceFeatures()
    {
        WriteCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4, 0);
        ulong low = ReadCommon(VirtioPciCommonConfig.DeviceFeature, 4);
        WriteCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4, 1);
        ulong high = ReadCommon(VirtioPciCommonConfig.DeviceFeature, 4);
        return low | (high << 32);
    }

    /// <summary>Writes the 64 driver feature bits through driver_feature_select 0 and 1.</summary>
    /// <param name="features">The features the driver accepts.</param>
    public void WriteDriverFeatures(ulong features)
    {
        WriteCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4, 0);
        WriteCommon(VirtioPciCommonConfig.DriverFeature, 4, (uint)features);
        WriteCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4, 1);
        WriteCommon(VirtioPciCommonConfig.DriverFeature, 4, (uint)(features >> 32));
    }

    /// <summary>
    /// Resets, negotiates <paramref name="wanted"/> ∩ offered features, assigns config_msix_vector 0 when
    /// MSI-X is enabled, sets up queue i with queues[i] (MSI-X vector i + 1 when enabled), then sets DRIVER_OK.
    /// </summary>
    /// <param name="wanted">The features the driver would use.</param>
    /// <param name="queues">One driver per queue, from queue 0.</param>
    /// <returns>The negotiated features.</returns>
    /// <exception cref="InvalidOperationException">The device refused FEATURES_OK, a queue or a vector.</exception>
    public ulong Initialize(ulong wanted, params GuestDriver[] queues)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (CommonConfigAddress == 0)
        {
            Probe();
        }

        Status = DeviceStatus.None;
        Status = DeviceStatus.Acknowledge;
        Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        ulong offered = ReadDeviceFeatures();
        if ((offered & VirtioFeatures.Version1) == 0)
        {
            throw new InvalidOperationException("The device does not offer VIRTIO_F_VERSION_1.");
        }

        ulong features = offered & (wanted | VirtioFeatures.Version1);
        WriteDriverFeatures(features);
        Status = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk;
        if ((Status & DeviceStatus.FeaturesOk) == 0)
        {
            throw new InvalidOperationException("The device refused FEATURES_OK.");
        }

        bool msiX = MsiXCapabilityOffset != 0 && (ReadConfig(MsiXCapabilityOffset + 2, 2) & 0x8000) != 0;
        if (msiX)
        {
            WriteCommon(VirtioPciCommonConfig.ConfigMsixVector, 2, 0);
            if (ReadCommon(VirtioPciCommonConfig.ConfigMsixVector, 2) != 0)
            {
                throw new InvalidOperationException("The device refused MSI-X vector 0 for configuration changes.");
            }
        }

        for (int i = 0; i < queues.Length; i++)
        {
            ushort vector = msiX ? (ushort)Math.Min(i + 1, MsiXTableSize - 1) : VirtioPciFunction.NoVector;
            SetUpQueue((ushort)i, queues[i], vector);
        }

        Status = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk;
        return features;
    }

    /// <summary>Selects queue <paramref name="index"/>, writes its size, vector and ring addresses, and enables it.</summary>
    /// <param name="index">The queue.</param>
    /// <param name="driver">The driver whose rings the queue uses.</param>
    /// <param name="msixVector">The queue's MSI-X vector, or <see cref="VirtioPciFunction.NoVector"/>.</param>
    /// <exception cref="InvalidOperationException">The queue is enabled already, too small, refused the vector or did not enable.</exception>
    public void SetUpQueue(ushort index, GuestDriver driver, ushort msixVector = VirtioPciFunction.NoVector)
    {
        ArgumentNullException.ThrowIfNull(driver);
        WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, index);
        if (ReadCommon(VirtioPciCommonConfig.QueueEnable, 2) != 0)
        {
            throw new InvalidOperationException($"Queue {index} is already enabled.");
        }

        uint max = ReadCommon(VirtioPciCommonConfig.QueueSize, 2);
        if (max < driver.QueueSize)
        {
            throw new InvalidOperationException($"Queue {index} holds at most {max} entries.");
        }

        WriteCommon(VirtioPciCommonConfig.QueueSize, 2, driver.QueueSize);
        WriteCommon(VirtioPciCommonConfig.QueueDesc, 4, (uint)driver.DescriptorTable.Value);
        WriteCommon(VirtioPciCommonConfig.QueueDesc + 4, 4, (uint)(driver.DescriptorTable.Value >> 32));
        WriteCommon(VirtioPciCommonConfig.QueueDriver, 4, (uint)driver.AvailRing.Value);
        WriteCommon(VirtioPciCommonConfig.QueueDriver + 4, 4, (uint)(driver.AvailRing.Value >> 32));
        WriteCommon(VirtioPciCommonConfig.QueueDevice, 4, (uint)driver.UsedRing.Value);
        WriteCommon(VirtioPciCommonConfig.QueueDevice + 4, 4, (uint)(driver.UsedRing.Value >> 32));
        WriteCommon(VirtioPciCommonConfig.QueueMsixVector, 2, msixVector);
        if (ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2) != msixVector)
        {
            throw new InvalidOperationException($"Queue {index} refused MSI-X vector {msixVector}.");
        }

        _notifyOffsets[index] = (ushort)ReadCommon(VirtioPciCommonConfig.QueueNotifyOff, 2);
        WriteCommon(VirtioPciCommonConfig.QueueEnable, 2, 1);
        if (ReadCommon(VirtioPciCommonConfig.QueueEnable, 2) != 1)
        {
            throw new InvalidOperationException($"Queue {index} did not enable.");
        }
    }

    /// <summary>Rings queue <paramref name="index"/>'s doorbell (a 16-bit write of the index at its notify address).</summary>
    /// <param name="index">The queue.</param>
    public void Notify(ushort index)
    {
        if (!_notifyOffsets.TryGetValue(index, out ushort notifyOff))
        {
            WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, index);
            notifyOff = (ushort)ReadCommon(VirtioPciCommonConfig.QueueNotifyOff, 2);
        }

        WriteMemory(NotifyBaseAddress + ((ulong)notifyOff * NotifyOffMultiplier), 2, index);
    }

    /// <summary>Reads the ISR status byte, which clears it, as an INTx handler does.</summary>
    /// <returns>The bits that were set.</returns>
    public byte ReadIsr() => (byte)ReadMemory(IsrAddress, 1);

    /// <summary>Reads device configuration through the device configuration structure.</summary>
    /// <param name="offset">The offset in the device configuration.</param>
    /// <param name="width">1, 2 or 4.</param>
    /// <returns>The value.</returns>
    public uint ReadDeviceConfig(int offset, int width) => (uint)ReadMemory(DeviceConfigAddress + (ulong)offset, width);

    private void RequireMsiX()
    {
        if (MsiXCapabilityOffset == 0)
        {
            throw new InvalidOperationException("The function has no MSI-X capability (or Probe was not called).");
        }
    }

    /// <summary>
    /// Walks the capability list as virtio_pci_modern_dev.c does: the first vendor-specific capability of each
    /// cfg_type whose BAR is implemented wins, and each must fit its BAR and be long enough.
    /// </summary>
    private void WalkCapabilities()
    {
        if ((ReadConfig(0x06, 2) & 0x10) == 0)
        {
            throw new InvalidOperationException("The function has no capability list.");
        }

        bool common = false, notify = false, isr = false, device = false;
        int pointer = (int)ReadConfig(0x34, 1) & ~3;
        for (int ttl = 48; pointer >= 0x40 && ttl > 0; ttl--)
        {
            uint id = ReadConfig(pointer, 1);
            int next = (int)ReadConfig(pointer + 1, 1) & ~3;
            if (id == 0x11 && MsiXCapabilityOffset == 0)
            {
                MsiXCapabilityOffset = pointer;
                MsiXTableSize = (int)(ReadConfig(pointer + 2, 2) & 0x7FF) + 1;
                uint table = ReadConfig(pointer + 4, 4);
                uint pba = ReadConfig(pointer + 8, 4);
                _msiXTable = _bars[table & 7] + (table & ~7u);
                _msiXPba = _bars[pba & 7] + (pba & ~7u);
            }
            else if (id == 0x09)
            {
                var type = (VirtioPciCapabilityType)ReadConfig(pointer + 3, 1);
                int bar = (int)ReadConfig(pointer + 4, 1);
                uint offset = ReadConfig(pointer + 8, 4);
                uint length = ReadConfig(pointer + 12, 4);
                if (type == VirtioPciCapabilityType.PciConfigAccess)
                {
                    PciConfigAccessOffset = PciConfigAccessOffset == 0 ? pointer : PciConfigAccessOffset;
                }
                else if (bar < 6 && Function.GetBarSize(bar) != 0 && (ulong)offset + length <= Function.GetBarSize(bar))
                {
                    ulong address = _bars[bar] + offset;
                    switch (type)
                    {
                        case VirtioPciCapabilityType.CommonConfig when !common && length >= VirtioPciCommonConfig.Length:
                            common = true;
                            CommonConfigAddress = address;
                            break;
                        case VirtioPciCapabilityType.NotifyConfig when !notify && length >= 2:
                            notify = true;
                            NotifyBaseAddress = address;
                            NotifyOffMultiplier = ReadConfig(pointer + 16, 4);
                            break;
                        case VirtioPciCapabilityType.IsrConfig when !isr && length >= 1:
                            isr = true;
                            IsrAddress = address;
                            break;
                        case VirtioPciCapabilityType.DeviceConfig when !device:
                            device = true;
                            DeviceConfigAddress = address;
                            break;
                    }
                }
            }

            pointer = next;
        }

        if (!common || !notify || !isr)
        {
            throw new InvalidOperationException("A common, notify or ISR capability is missing.");
        }
    }
}
