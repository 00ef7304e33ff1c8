using System;
using System.Buffers.Binary;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;

namespace Virtio.Core.Transport;

/// <summary>
/// The virtio-mmio version 2 register file (virtio 1.2 §4.2.2) in front of a <see cref="VirtioDevice"/>.
/// The embedder forwards the guest's MMIO reads and writes of the device's window here (offsets
/// relative to the window's base) and supplies the interrupt line the device raises.
/// </summary>
/// <remarks>
/// <para><see cref="Read"/> and <see cref="Write"/> are called by one vCPU thread at a time.
/// InterruptStatus is updated atomically, so the device may raise interrupts from its I/O thread
/// while a vCPU reads and acknowledges them.</para>
/// <para>Accesses of the wrong width or alignment, writes of read-only registers, reads of
/// write-only ones, and queue-configuration writes while that queue is ready are ignored and
/// logged once per kind. Reads of ignored registers return zero.</para>
/// </remarks>
public sealed class VirtioMmioTransport
{
    /// <summary>The value of MagicValue: "virt" in little-endian.</summary>
    public const uint Magic = 0x74726976;

    /// <summary>The virtio-mmio version this register file implements.</summary>
    public const uint VersionValue = 2;

    /// <summary>The vendor ID reported when the embedder gives none ("DNET" in little-endian).</summary>
    public const uint DefaultVendorId = 0x54454E44;

    /// <summary>The size of the register window without the device configuration (0x100 bytes).</summary>
    public const int RegisterWindowSize = VirtioMmioRegister.Config;

    private readonly VirtioDevice _device;
    private readonly InterruptLatch _interrupts;
    private readonly ILogger _logger;
    private int _loggedKinds;
    private uint _deviceFeaturesSel;
    private uint _driverFeaturesSel;
    private ushort _queueSel;
    private uint _shmSel;

    /// <summary>Puts a virtio-mmio register file in front of <paramref name="device"/>.</summary>
    /// <param name="device">The device; its <see cref="VirtioDevice.GuestNotifier"/> is set to this transport's latch.</param>
    /// <param name="interruptLine">The guest interrupt line (an irqfd, or a callback into the embedder's interrupt controller).</param>
    /// <param name="logger">Where ignored accesses are logged; none by default.</param>
    /// <param name="vendorId">The VendorID register's value.</param>
    public VirtioMmioTransport(VirtioDevice device, IGuestNotifier interruptLine, ILogger? logger = null, uint vendorId = DefaultVendorId)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(interruptLine);
        _device = device;
        _logger = logger ?? NullLogger.Instance;
        VendorId = vendorId;
        _interrupts = new InterruptLatch(interruptLine);
        device.GuestNotifier = _interrupts;
    }

    /// <summary>The device behind the registers.</summary>
    public VirtioDevice Device => _device;

    /// <summary>The VendorID register's value.</summary>
    public uint VendorId { get; }

    /// <summary>The InterruptStatus register: bit 0 used buffer, bit 1 configuration change. Readable from any thread.</summary>
    public uint InterruptStatus => _interrupts.Status;

    /// <summary>
    /// Called for a QueueNotify write instead of processing the queue on the vCPU thread; return
    /// true when the notification was taken (for instance signalled to an I/O thread). When null
    /// or returning false, the device processes the queue synchronously.
    /// </summary>
    public Func<ushort, bool>? QueueNotifyHandler { get; set; }

    /// <summary>Handles a guest read of <c>data.Length</c> bytes at <paramref name="offset"/> within the window.</summary>
    /// <param name="offset">The offset from the window's base.</param>
    /// <param name="data">Receives the little-endian value; zero for ignored accesses.</param>
    public void Read(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (offset >= VirtioMmioRegister.Config)
        {
            ulong configOffset = offset - VirtioMmioRegister.Config;
            if (configOffset <= int.MaxValue)
            {
                _device.ReadConfig((int)configOffset, data);
            }

            return;
        }

        if (!IsRegisterAccess(offset, data.Length))
        {
            Ignore(IgnoredKind.WrongWidth, offset, data.Length);
            return;
        }

        uint value;
        switch ((int)offset)
        {
            case VirtioMmioRegister.MagicValue: value = Magic; break;
            case VirtioMmioRegister.Version: value = VersionValue; break;
            case VirtioMmioRegister.DeviceId: value = _device.DeviceId; break;
            case VirtioMmioRegister.VendorId: value = VendorId; break;
            case VirtioMmioRegister.DeviceFeatures:
                value = TransportRegisters.FeatureWord(_device.DeviceFeatures, _deviceFeaturesSel);
                break;
            case VirtioMmioRegister.QueueNumMax: value = SelectedQueue?.MaxSize ?? 0u; break;
            case VirtioMmioRegister.QueueReady: value = SelectedQueue is { IsReady: true } ? 1u : 0u; break;
            case VirtioMmioRegister.InterruptStatus: value = _interrupts.Status; break;
            case VirtioMmioRegister.Status: value = (uint)_device.Status; break;
            case VirtioMmioRegister.ShmLenLow:
            case VirtioMmioRegister.ShmLenHigh:
            case VirtioMmioRegister.ShmBaseLow:
            case VirtioMmioRegister.ShmBaseHigh:
                // virtio 1.2 §4.2.2: a shared memory region that does not exist has length -1.
                value = uint.MaxValue;
                break;
            case VirtioMmioRegister.QueueReset: value = 0; break;
            case VirtioMmioRegister.ConfigGeneration: value = _device.ConfigGeneration; break;
            default:
                Ignore(IsKnownWriteOnly(offset) ? IgnoredKind.ReadOfWriteOnly : IgnoredKind.UnknownRegister, offset, data.Length);
                return;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(data, value);
    }

    /// <summary>Handles a guest write of <c>data.Length</c> bytes at <paramref name="offset"/> within the window.</summary>
    /// <param name="offset">The offset from the window's base.</param>
    /// <param name="data">The little-endian value the guest wrote.</param>
    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= VirtioMmioRegister.Config)
        {
            ulong configOffset = offset - VirtioMmioRegister.Config;
            if (configOffset <= int.MaxValue)
            {
                _device.WriteConfig((int)configOffset, data);
            }

            return;
        }

        if (!IsRegisterAccess(offset, data.Length))
        {
            Ignore(IgnoredKind.WrongWidth, offset, data.Length);
            return;
        }

        uint value = BinaryPrimitives.ReadUInt32LittleEndian(data);
        switch ((int)offset)
        {
            case VirtioMmioRegister.DeviceFeaturesSel: _deviceFeaturesSel = value; break;
            case VirtioMmioRegister.DriverFeaturesSel: _driverFeaturesSel = value; break;
            case VirtioMmioRegister.DriverFeatures: WriteDriverFeatures(value); break;
            case VirtioMmioRegister.QueueSel: _queueSel = value > ushort.MaxValue ? ushort.MaxValue : (ushort)value; break;
            case VirtioMmioRegister.QueueNum:
                if (ConfigurableQueue(offset) is { } numQueue)
                {
                    numQueue.Size = value > ushort.MaxValue ? (ushort)0 : (ushort)value;
                }

                break;
            case VirtioMmioRegister.QueueDescLow: SetQueueAddress(offset, QueueArea.Descriptor, value, high: false); break;
            case VirtioMmioRegister.QueueDescHigh: SetQueueAddress(offset, QueueArea.Descriptor, value, high: true); break;
            case VirtioMmioRegister.QueueDriverLow: SetQueueAddress(offset, QueueArea.Driver, value, high: false); break;
            case VirtioMmioRegister.QueueDriverHigh: SetQueueAddress(offset, QueueArea.Driver, value, high: true); break;
            case VirtioMmioRegister.QueueDeviceLow: SetQueueAddress(offset, QueueArea.Device, value, high: false); break;
            case VirtioMmioRegister.QueueDeviceHigh: SetQueueAddress(offset, QueueArea.Device, value, high: true); break;
            case VirtioMmioRegister.QueueReady: WriteQueueReady(value); break;
            case VirtioMmioRegister.QueueNotify: NotifyQueue((ushort)value); break;
            case VirtioMmioRegister.InterruptAck: _interrupts.Acknowledge(value); break;
            case VirtioMmioRegister.Status:
                var status = (DeviceStatus)(byte)value;
                _device.WriteStatus(status);
                if (status == DeviceStatus.None)
                {
                    ResetRegisters();
                }

                break;
            case VirtioMmioRegister.ShmSel: _shmSel = value; break;
            default:
                Ignore(IsKnownReadOnly(offset) ? IgnoredKind.WriteOfReadOnly : IgnoredKind.UnknownRegister, offset, data.Length);
                break;
        }
    }

    private SplitVirtqueue? SelectedQueue => _queueSel < _device.Queues.Count ? _device.Queues[_queueSel] : null;

    private SplitVirtqueue? ConfigurableQueue(ulong offset)
    {
        SplitVirtqueue? queue = SelectedQueue;
        if (queue is null)
        {
            Ignore(IgnoredKind.NoSuchQueue, offset, 4);
            return null;
        }

        if (queue.IsReady)
        {
            // virtio 1.2 §4.2.3.2: a queue is configured only while QueueReady reads 0.
            Ignore(IgnoredKind.QueueLive, offset, 4);
            return null;
        }

        return queue;
    }

    private void WriteDriverFeatures(uint value) => TransportRegisters.WriteDriverFeatureWord(_device, _driverFeaturesSel, value);

    private void SetQueueAddress(ulong offset, QueueArea which, uint value, bool high)
    {
        if (ConfigurableQueue(offset) is { } queue)
        {
            TransportRegisters.SetAreaHalf(queue, which, value, high);
        }
    }

    private void WriteQueueReady(uint value)
    {
        SplitVirtqueue? queue = SelectedQueue;
        if (queue is null)
        {
            Ignore(IgnoredKind.NoSuchQueue, VirtioMmioRegister.QueueReady, 4);
            return;
        }

        if ((value & 1) != 0)
        {
            if (!queue.IsReady)
            {
                _device.ActivateQueue(queue.Index);
            }
        }
        else
        {
            _device.DeactivateQueue(queue.Index);
        }
    }

    private void NotifyQueue(ushort index)
    {
        if (QueueNotifyHandler is { } handler && handler(index))
        {
            return;
        }

        _device.NotifyQueue(index);
    }

    private void ResetRegisters()
    {
        _deviceFeaturesSel = 0;
        _driverFeaturesSel = 0;
        _queueSel = 0;
        _shmSel = 0;
        _interrupts.Clear();
    }

    private static bool IsRegisterAccess(ulong offset, int size) => size == 4 && offset % 4 == 0;

    private static bool IsKnownWriteOnly(ulong offset) => (int)offset switch
    {
        VirtioMmioRegister.DeviceFeaturesSel or VirtioMmioRegister.DriverFeatures or VirtioMmioRegister.DriverFeaturesSel
            or VirtioMmioRegister.QueueSel or VirtioMmioRegister.QueueNum or VirtioMmioRegister.QueueNotify
            or VirtioMmioRegister.InterruptAck or VirtioMmioRegister.QueueDescLow or VirtioMmioRegister.QueueDescHigh
            or VirtioMmioRegister.QueueDriverLow or VirtioMmioRegister.QueueDriverHigh or VirtioMmioRegister.QueueDeviceLow
            or VirtioMmioRegister.QueueDeviceHigh or VirtioMmioRegister.ShmSel => true,
        _ => false,
    };

    private static bool IsKnownReadOnly(ulong offset) => (int)offset switch
    {
        VirtioMmioRegister.MagicValue or VirtioMmioRegister.Version or VirtioMmioRegister.DeviceId
            or VirtioMmioRegister.VendorId or VirtioMmioRegister.DeviceFeatures or VirtioMmioRegister.QueueNumMax
            or VirtioMmioRegister.InterruptStatus or VirtioMmioRegister.ShmLenLow or VirtioMmioRegister.ShmLenHigh
            or VirtioMmioRegister.ShmBaseLow or VirtioMmioRegister.ShmBaseHigh or VirtioMmioRegister.ConfigGeneration
            or VirtioMmioRegister.QueueReset => true,
        _ => false,
    };

    private void Ignore(IgnoredKind kind, ulong offset, int size)
    {
        CoreMetrics.IgnoredRegisterAccesses.Add(1, _device.MetricsDeviceTag);
        int bit = 1 << (int)kind;
        if ((Interlocked.Or(ref _loggedKinds, bit) & bit) == 0)
        {
            Log.IgnoredAccess(_logger, kind.ToString(), offset, size);
        }
    }

    private enum IgnoredKind
    {
        WrongWidth,
        WriteOfReadOnly,
        ReadOfWriteOnly,
        UnknownRegister,
        QueueLive,
        NoSuchQueue,
    }
}
