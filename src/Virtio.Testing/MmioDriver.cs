using System;
using System.Buffers.Binary;
using Virtio.Core.Devices;
using Virtio.Core.Transport;

namespace Virtio.Testing;

/// <summary>
/// Drives a virtio-mmio register file the way Linux's virtio_mmio driver probes a device
/// (virtio 1.2 §3.1.1): reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue set-up, DRIVER_OK.
/// </summary>
/// <remarks>Calls go straight to the transport's <c>Read</c>/<c>Write</c> on the calling thread, as a
/// vCPU's MMIO exits would: one thread at a time.</remarks>
/// <param name="transport">The register file to drive.</param>
public sealed class MmioDriver(VirtioMmioTransport transport)
{
    /// <summary>The register file driven.</summary>
    public VirtioMmioTransport Transport { get; } = transport;

    /// <summary>Reads a 32-bit register.</summary>
    /// <param name="offset">The register's offset (<see cref="VirtioMmioRegister"/>).</param>
    /// <returns>Its value.</returns>
    public uint Read(int offset)
    {
        Span<byte> data = stackalloc byte[4];
        Transport.Read((ulong)offset, data);
        return BinaryPrimitives.ReadUInt32LittleEndian(data);
    }

    /// <summary>Writes a 32-bit register.</summary>
    /// <param name="offset">The register's offset (<see cref="VirtioMmioRegister"/>).</param>
    /// <param name="value">The value.</param>
    public void Write(int offset, uint value)
    {
        Span<byte> data = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(data, value);
        Transport.Write((ulong)offset, data);
    }

    /// <summary>The 64 device feature bits, read through DeviceFeaturesSel 0 and 1.</summary>
    /// <returns>The features the device offers.</returns>
    public ulong ReadDeviceFeatures()
    {
        Write(VirtioMmioRegister.DeviceFeaturesSel, 0);
        ulong low = Read(VirtioMmioRegister.DeviceFeatures);
        Write(VirtioMmioRegister.DeviceFeaturesSel, 1);
        ulong high = Read(VirtioMmioRegister.DeviceFeatures);
        return low | (high << 32);
    }

    /// <summary>Writes the 64 driver feature bits through DriverFeaturesSel 0 and 1.</summary>
    /// <param name="features">The features the driver accepts.</param>
    public void WriteDriverFeatures(ulong features)
    {
        Write(VirtioMmioRegister.DriverFeaturesSel, 0);
        Write(VirtioMmioRegister.DriverFeatures, (uint)features);
        Write(VirtioMmioRegister.DriverFeaturesSel, 1);
        Write(VirtioMmioRegister.DriverFeatures, (uint)(features >> 32));
    }

    /// <summary>The status register.</summary>
    public DeviceStatus Status
    {
        get => (DeviceStatus)Read(VirtioMmioRegister.Status);
        set => Write(VirtioMmioRegister.Status, (uint)value);
    }

    /// <summary>
    /// Negotiates <paramref name="wanted"/> ∩ offered features and sets up one queue per driver
    /// in <paramref name="queues"/> (queue i gets queues[i]), then sets DRIVER_OK.
    /// </summary>
    /// <param name="wanted">The features the driver would use; only those the device offers are written.</param>
    /// <param name="queues">One driver per queue, from queue 0.</param>
    /// <returns>The negotiated features.</returns>
    /// <exception cref="InvalidOperationException">The device refused FEATURES_OK or a queue.</exception>
    public ulong Initialize(ulong wanted, params GuestDriver[] queues)
    {
        ArgumentNullException.ThrowIfNull(queues);
        if (Read(VirtioMmioRegister.MagicValue) != VirtioMmioTransport.Magic || Read(VirtioMmioRegister.Version) != 2)
        {
            throw new InvalidOperationException("Not a virtio-mmio version 2 device.");
        }

        Status = DeviceStatus.None;
        Status = DeviceStatus.Acknowledge;
        Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        ulong features = ReadDeviceFeatures() & wanted;
        WriteDriverFeatures(features);
        Status = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk;
        if ((Status & DeviceStatus.FeaturesOk) == 0)
        {
            throw new InvalidOperationException("The device refused FEATURES_OK.");
        }

        for (int i = 0; i < queues.Length; i++)
        {
            SetUpQueue((ushort)i, queues[i]);
        }

        Status = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk;
        return features;
    }

    /// <summary>Writes one queue's size and ring addresses and sets QueueReady.</summary>
    /// <param name="index">The queue's index.</param>
    /// <param name="driver">The driver whose rings the queue uses.</param>
    /// <exception cref="InvalidOperationException">The queue is already ready, too small, or did not become ready.</exception>
    public void SetUpQueue(ushort index, GuestDriver driver)
    {
        ArgumentNullException.ThrowIfNull(driver);
        Write(VirtioMmioRegister.QueueSel, index);
        if (Read(VirtioMmioRegister.QueueReady) != 0)
        {
            throw new InvalidOperationException($"Queue {index} is already ready.");
        }

        uint max = Read(VirtioMmioRegister.QueueNumMax);
        if (max < driver.QueueSize)
        {
            throw new InvalidOperationException($"Queue {index} holds at most {max} entries.");
        }

        Write(VirtioMmioRegister.QueueNum, driver.QueueSize);
        Write(VirtioMmioRegister.QueueDescLow, (uint)driver.DescriptorTable.Value);
        Write(VirtioMmioRegister.QueueDescHigh, (uint)(driver.DescriptorTable.Value >> 32));
        Write(VirtioMmioRegister.QueueDriverLow, (uint)driver.AvailRing.Value);
        Write(VirtioMmioRegister.QueueDriverHigh, (uint)(driver.AvailRing.Value >> 32));
        Write(VirtioMmioRegister.QueueDeviceLow, (uint)driver.UsedRing.Value);
        Write(VirtioMmioRegister.QueueDeviceHigh, (uint)(driver.UsedRing.Value >> 32));
        Write(VirtioMmioRegister.QueueReady, 1);
        if (Read(VirtioMmioRegister.QueueReady) != 1)
        {
            throw new InvalidOperationException($"Queue {index} did not become ready.");
        }
    }

    /// <summary>Kicks queue <paramref name="index"/> through QueueNotify.</summary>
    /// <param name="index">The queue's index.</param>
    public void Notify(ushort index) => Write(VirtioMmioRegister.QueueNotify, index);

    /// <summary>Reads InterruptStatus and acknowledges every bit set, as an interrupt handler does.</summary>
    /// <returns>The bits that were set.</returns>
    public uint AcknowledgeInterrupts()
    {
        uint status = Read(VirtioMmioRegister.InterruptStatus);
        if (status != 0)
        {
            Write(VirtioMmioRegister.InterruptAck, status);
        }

        return status;
    }
}
