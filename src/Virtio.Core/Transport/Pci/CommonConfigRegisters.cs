using System;
using System.Buffers.Binary;
using Virtio.Core.Devices;
using Virtio.Core.Queues;

namespace Virtio.Core.Transport.Pci;

/// <summary>
/// The common configuration structure (virtio 1.2 §4.1.4.3) of one function: the selectors it keeps and
/// each field's semantics, with the width rules of §4.1.3. One vCPU thread at a time.
/// </summary>
internal sealed class CommonConfigRegisters(VirtioDevice device, VirtioPciInterrupts interrupts, PciAccessLog log)
{
    private const string Region = "common";

    /// <summary>VIRTIO_F_NOTIFICATION_DATA (37): this transport has no queue_notify_data.</summary>
    private const ulong NotificationData = 1UL << 37;

    /// <summary>Transport features this transport does not implement (no queue_reset, no notify data): never offered.</summary>
    private const ulong Unsupported = VirtioFeatures.RingReset | NotificationData;

    private uint _deviceFeatureSelect;
    private uint _driverFeatureSelect;
    private ushort _queueSelect;

    /// <summary>The features offered through device_feature: the device's, minus the transport features this transport lacks.</summary>
    public ulong OfferedFeatures => device.DeviceFeatures & ~Unsupported;

    public void Read(int offset, Span<byte> data)
    {
        data.Clear();
        if (!IsFieldAccess(offset, data.Length))
        {
            return;
        }

        SplitVirtqueue? queue = SelectedQueue;
        uint value = offset switch
        {
            VirtioPciCommonConfig.DeviceFeatureSelect => _deviceFeatureSelect,
            VirtioPciCommonConfig.DeviceFeature => TransportRegisters.FeatureWord(OfferedFeatures, _deviceFeatureSelect),
            VirtioPciCommonConfig.DriverFeatureSelect => _driverFeatureSelect,
            VirtioPciCommonConfig.DriverFeature => TransportRegisters.FeatureWord(device.StagedDriverFeatures, _driverFeatureSelect),
            VirtioPciCommonConfig.ConfigMsixVector => interrupts.ConfigVector,
            VirtioPciCommonConfig.NumQueues => (uint)device.Queues.Count,
            VirtioPciCommonConfig.DeviceStatus => (uint)device.Status,
            VirtioPciCommonConfig.ConfigGeneration => (byte)device.ConfigGeneration,
            VirtioPciCommonConfig.QueueSelect => _queueSelect,
            VirtioPciCommonConfig.QueueSize => queue?.Size ?? 0u,
            VirtioPciCommonConfig.QueueMsixVector => interrupts.GetQueueVector(_queueSelect),
            VirtioPciCommonConfig.QueueEnable => queue is { IsReady: true } ? 1u : 0u,
            VirtioPciCommonConfig.QueueNotifyOff => queue is null ? 0u : queue.Index,
            VirtioPciCommonConfig.QueueDesc => (uint)(queue?.DescriptorTable.Value ?? 0),
            VirtioPciCommonConfig.QueueDesc + 4 => (uint)((queue?.DescriptorTable.Value ?? 0) >> 32),
            VirtioPciCommonConfig.QueueDriver => (uint)(queue?.AvailRing.Value ?? 0),
            VirtioPciCommonConfig.QueueDriver + 4 => (uint)((queue?.AvailRing.Value ?? 0) >> 32),
            VirtioPciCommonConfig.QueueDevice => (uint)(queue?.UsedRing.Value ?? 0),
            _ => (uint)((queue?.UsedRing.Value ?? 0) >> 32),
        };
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        bytes[..data.Length].CopyTo(data);
    }

    public void Write(int offset, ReadOnlySpan<byte> data)
    {
        if (!IsFieldAccess(offset, data.Length))
        {
            return;
        }

        Span<byte> bytes = stackalloc byte[4];
        bytes.Clear();
        data.CopyTo(bytes);
        uint value = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        switch (offset)
        {
            case VirtioPciCommonConfig.DeviceFeatureSelect: _deviceFeatureSelect = value; break;
            case VirtioPciCommonConfig.DriverFeatureSelect: _driverFeatureSelect = value; break;
            case VirtioPciCommonConfig.DriverFeature: WriteDriverFeature(value); break;
            case VirtioPciCommonConfig.ConfigMsixVector: interrupts.SetConfigVector((ushort)value); break;
            case VirtioPciCommonConfig.DeviceStatus: WriteStatus((byte)value); break;
            case VirtioPciCommonConfig.QueueSelect: _queueSelect = (ushort)value; break;
            case VirtioPciCommonConfig.QueueSize:
                if (ConfigurableQueue(offset) is { } sized)
                {
                    sized.Size = (ushort)value; // checked (power of two, at most the maximum) when enabled
                }

                break;
            case VirtioPciCommonConfig.QueueMsixVector:
                // Allowed while the queue runs too, as QEMU allows it: the vector is the transport's routing,
                // not the ring's, and Linux writes NO_VECTOR to queues it tears down.
                if (SelectedQueue is null)
                {
                    log.Ignore(PciIgnoredKind.NoSuchQueue, Region, (ulong)offset, data.Length);
                }
                else
                {
                    interrupts.SetQueueVector(_queueSelect, (ushort)value);
                }

                break;
            case VirtioPciCommonConfig.QueueEnable: WriteQueueEnable(offset, value); break;
            case VirtioPciCommonConfig.QueueDesc: SetQueueAddress(offset, QueueArea.Descriptor, value, high: false); break;
            case VirtioPciCommonConfig.QueueDesc + 4: SetQueueAddress(offset, QueueArea.Descriptor, value, high: true); break;
            case VirtioPciCommonConfig.QueueDriver: SetQueueAddress(offset, QueueArea.Driver, value, high: false); break;
            case VirtioPciCommonConfig.QueueDriver + 4: SetQueueAddress(offset, QueueArea.Driver, value, high: true); break;
            case VirtioPciCommonConfig.QueueDevice: SetQueueAddress(offset, QueueArea.Device, value, high: false); break;
            case VirtioPciCommonConfig.QueueDevice + 4: SetQueueAddress(offset, QueueArea.Device, value, high: true); break;
            default:
                // device_feature, num_queues, config_generation, queue_notify_off.
                log.Ignore(PciIgnoredKind.CommonReadOnly, Region, (ulong)offset, data.Length);
                break;
        }
    }

    /// <summary>A virtio reset returns the selectors to 0 (the vectors are reset with the interrupts).</summary>
    public void Reset()
    {
        _deviceFeatureSelect = 0;
        _driverFeatureSelect = 0;
        _queueSelect = 0;
    }

    /// <summary>The width of the field that starts at <paramref name="offset"/>; 0 inside a field or past the structure.</summary>
    internal static int FieldWidth(int offset) => offset switch
    {
        VirtioPciCommonConfig.DeviceFeatureSelect or VirtioPciCommonConfig.DeviceFeature
            or VirtioPciCommonConfig.DriverFeatureSelect or VirtioPciCommonConfig.DriverFeature => 4,
        VirtioPciCommonConfig.ConfigMsixVector or VirtioPciCommonConfig.NumQueues => 2,
        VirtioPciCommonConfig.DeviceStatus or VirtioPciCommonConfig.ConfigGeneration => 1,
        VirtioPciCommonConfig.QueueSelect or VirtioPciCommonConfig.QueueSize or VirtioPciCommonConfig.QueueMsixVector
            or VirtioPciCommonConfig.QueueEnable or VirtioPciCommonConfig.QueueNotifyOff => 2,

        // §4.1.3: a 64-bit field is two 32-bit fields, low then high, each accessed on its own.
        >= VirtioPciCommonConfig.QueueDesc and < VirtioPciCommonConfig.Length when offset % 4 == 0 => 4,
        _ => 0,
    };

    private bool IsFieldAccess(int offset, int size)
    {
        if (offset >= VirtioPciCommonConfig.Length)
        {
            log.Ignore(PciIgnoredKind.CommonUnknown, Region, (ulong)offset, size);
            return false;
        }

        if (FieldWidth(offset) != size)
        {
            // §4.1.3.1: each field with its own width; an 8-byte access of a 64-bit field is not one either.
            log.Ignore(PciIgnoredKind.CommonWrongWidth, Region, (ulong)offset, size);
            return false;
        }

        return true;
    }

    private SplitVirtqueue? SelectedQueue => _queueSelect < device.Queues.Count ? device.Queues[_queueSelect] : null;

    private SplitVirtqueue? ConfigurableQueue(int offset)
    {
        SplitVirtqueue? queue = SelectedQueue;
        if (queue is null)
        {
            log.Ignore(PciIgnoredKind.NoSuchQueue, Region, (ulong)offset, 4);
            return null;
        }

        if (queue.IsReady)
        {
            // §4.1.4.3.2: the driver configures a queue before it enables it; not after.
            log.Ignore(PciIgnoredKind.QueueEnabled, Region, (ulong)offset, 4);
            return null;
        }

        return queue;
    }

    private void WriteDriverFeature(uint value) => TransportRegisters.WriteDriverFeatureWord(device, _driverFeatureSelect, value);

    private void WriteStatus(byte value)
    {
        var status = (DeviceStatus)value;
        if ((status & DeviceStatus.FeaturesOk) != 0 && (device.Status & DeviceStatus.FeaturesOk) == 0
            && (device.StagedDriverFeatures & ~OfferedFeatures) != 0)
        {
            // A feature this transport never offered (the device may have): FEATURES_OK stays clear (§3.1.1).
            status &= ~DeviceStatus.FeaturesOk;
        }

        device.WriteStatus(status);
        if (status == DeviceStatus.None)
        {
            Reset();
            interrupts.ResetVirtio();
        }
    }

    private void WriteQueueEnable(int offset, uint value)
    {
        SplitVirtqueue? queue = SelectedQueue;
        if (queue is null)
        {
            log.Ignore(PciIgnoredKind.NoSuchQueue, Region, (ulong)offset, 2);
            return;
        }

        if (value != 1)
        {
            // §4.1.4.3.2: the driver must not write 0 (a queue stops only with a reset).
            log.Ignore(PciIgnoredKind.QueueDisable, Region, (ulong)offset, 2);
            return;
        }

        if (!queue.IsReady)
        {
            device.ActivateQueue(queue.Index);
        }
    }

    private void SetQueueAddress(int offset, QueueArea which, uint value, bool high)
    {
        if (ConfigurableQueue(offset) is { } queue)
        {
            TransportRegisters.SetAreaHalf(queue, which, value, high);
        }
    }
}
