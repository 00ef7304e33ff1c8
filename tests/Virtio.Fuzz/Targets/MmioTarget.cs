using System;
using System.Buffers.Binary;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;

namespace Virtio.Fuzz.Targets;

/// <summary>
/// <c>mmio</c>: a driver's register accesses as the input says, against a real device: a
/// two-queue <see cref="BlockDevice"/> over a <see cref="MemoryBlockBackend"/> behind a
/// <see cref="VirtioMmioTransport"/>, in 64 KiB of guest memory the input can also write (so queues
/// set up at arbitrary addresses find rings and chains there).
/// </summary>
/// <remarks>
/// <para>Input: up to 512 operations, each a byte whose low 2 bits say what: 0 a read, 1 a write,
/// 2 a QueueNotify of a u16, 3 a guest store of 8 bytes at a u16 address (times 1); for a read or
/// write, bits 2-3 are the width (1, 2, 4 or 8 bytes), then a u16 offset in the register window
/// and config space (masked to 0x1ff) and, for a write, a u64 whose low bytes are written. A few
/// values are folded in to make progress likelier: bit 4 of a write to Status ORs in the bits a
/// driver sets before it, and bit 5 of a write to a queue address register takes the address from
/// 16 KiB multiples.</para>
/// <para>Invariants: nothing throws out of the transport and no device code throws; MagicValue,
/// Version and DeviceID always read as a virtio-mmio v2 block device; Status holds only bits the
/// driver wrote, plus DEVICE_NEEDS_RESET; writing Status 0 resets (Status 0, no queue ready, no
/// queue error); a ready queue's rings lie inside guest memory, aligned; InterruptStatus holds
/// only its two bits; a queue never has more in flight than its size.</para>
/// </remarks>
internal sealed class MmioTarget : IFuzzTarget
{
    private const ulong MemorySize = 64 << 10;
    private const int MaxOperations = 512;

    private readonly GuestMemory _memory = GuestMemory.CreateAnonymous(MemorySize);
    private readonly MemoryBlockBackend _backend = new(16 << 10);
    private readonly FaultLogger _logger = new();
    private readonly BlockDevice _device;
    private readonly InterruptRecorder _line = new() { KeepLog = false };
    private uint _statusWritten;

    public MmioTarget()
    {
        _device = new BlockDevice(_memory, _backend, new BlockDeviceOptions { QueueCount = 2, QueueSize = 64 }, _logger);
    }

    public string Name => "mmio";

    public void Host(Action loop) => loop();

    public void Run(ReadOnlySpan<byte> input)
    {
        var transport = new VirtioMmioTransport(_device, _line, _logger);
        var mmio = new MmioDriver(transport);
        mmio.Status = DeviceStatus.None;
        _memory.TryGetSpan(new GuestAddress(0), (int)MemorySize, out Span<byte> memory);
        memory.Clear();
        _statusWritten = 0;
        Span<byte> data = stackalloc byte[8];

        var reader = new FuzzInput(input);
        for (int op = 0; op < MaxOperations && !reader.IsEmpty; op++)
        {
            byte kind = reader.Byte();
            switch (kind & 3)
            {
                case 0:
                    ushort readOffset = (ushort)(reader.UInt16() & 0x1FF);
                    Span<byte> into = data[..(1 << ((kind >> 2) & 3))];
                    transport.Read(readOffset, into);
                    CheckRead(readOffset, into);
                    break;
                case 1:
                    ushort writeOffset = (ushort)(reader.UInt16() & 0x1FF);
                    ulong value = Fold(kind, writeOffset, reader.UInt64());
                    Span<byte> from = data[..(1 << ((kind >> 2) & 3))];
                    BinaryPrimitives.WriteUInt64LittleEndian(data, value);
                    transport.Write(writeOffset, from);
                    if (writeOffset == VirtioMmioRegister.Status && from.Length == 4)
                    {
                        _statusWritten = value == 0 ? 0 : _statusWritten | (uint)value;
                        if (value == 0)
                        {
                            CheckReset();
                        }
                    }

                    break;
                case 2:
                    mmio.Notify(reader.UInt16());
                    break;
                default:
                    ushort address = reader.UInt16();
                    reader.Fill(memory.Slice(Math.Min((int)address, (int)MemorySize - 8), 8));
                    break;
            }

            _logger.ThrowIfFaulted();
            CheckDevice();
        }

        mmio.Status = DeviceStatus.None;
        CheckReset();
    }

    /// <summary>Folds in driver-like values (see the remarks) to reach the states past FEATURES_OK and QueueReady.</summary>
    private static ulong Fold(byte kind, ushort offset, ulong value)
    {
        if ((kind & 0x10) != 0 && offset == VirtioMmioRegister.Status)
        {
            // ACKNOWLEDGE | DRIVER, and FEATURES_OK before DRIVER_OK, as a driver sets them.
            value |= 0x3 | (((value & 0x4) != 0) ? 0x8u : 0);
        }

        if ((kind & 0x20) != 0 && offset is VirtioMmioRegister.QueueDescLow or VirtioMmioRegister.QueueDriverLow or VirtioMmioRegister.QueueDeviceLow)
        {
            value = (value & 3) * 0x4000;
        }

        return value;
    }

    private void CheckRead(ushort offset, ReadOnlySpan<byte> value)
    {
        if (value.Length != 4)
        {
            return;
        }

        uint v = BinaryPrimitives.ReadUInt32LittleEndian(value);
        switch (offset)
        {
            case VirtioMmioRegister.MagicValue:
                Invariant.Check(v == VirtioMmioTransport.Magic, $"MagicValue read 0x{v:x}");
                break;
            case VirtioMmioRegister.Version:
                Invariant.Check(v == VirtioMmioTransport.VersionValue, $"Version read {v}");
                break;
            case VirtioMmioRegister.DeviceId:
                Invariant.Check(v == BlockDevice.BlockDeviceId, $"DeviceID read {v}");
                break;
            case VirtioMmioRegister.InterruptStatus:
                Invariant.Check((v & ~3u) == 0, $"InterruptStatus read 0x{v:x}");
                break;
            case VirtioMmioRegister.Status:
                Invariant.Check((v & ~(_statusWritten | (uint)DeviceStatus.DeviceNeedsReset)) == 0, $"Status read 0x{v:x}, the driver wrote 0x{_statusWritten:x}");
                break;
        }
    }

    private void CheckDevice()
    {
        foreach (SplitVirtqueue queue in _device.Queues)
        {
            Invariant.Check(queue.Error != QueueError.DeviceFailed, $"device code threw: queue {queue.Index} failed");
            Invariant.Check(queue.InFlightCount >= 0 && queue.InFlightCount <= queue.Size, $"queue {queue.Index} has {queue.InFlightCount} chains in flight at size {queue.Size}");
            if (!queue.IsReady)
            {
                continue;
            }

            var layout = new SplitRingLayout(queue.Size);
            Invariant.Check(queue.Size != 0 && (queue.Size & (queue.Size - 1)) == 0 && queue.Size <= queue.MaxSize, $"queue {queue.Index} is ready at size {queue.Size}");
            Invariant.Check(
                Fits(queue.DescriptorTable, layout.DescriptorTableSize, 16) && Fits(queue.AvailRing, layout.AvailRingSize, 2) && Fits(queue.UsedRing, layout.UsedRingSize, 4),
                $"queue {queue.Index} is ready with rings {queue.DescriptorTable}/{queue.AvailRing}/{queue.UsedRing} outside guest memory or misaligned");
        }

        uint status = (uint)_device.Status;
        Invariant.Check((status & ~(_statusWritten | (uint)DeviceStatus.DeviceNeedsReset)) == 0, $"device status 0x{status:x}, the driver wrote 0x{_statusWritten:x}");
    }

    private bool Fits(GuestAddress address, int length, ulong alignment) =>
        address.Value % alignment == 0 && _memory.TryGetSpan(address, length, out _);

    private void CheckReset()
    {
        Invariant.Check(_device.Status == DeviceStatus.None, $"status {_device.Status} after a reset");
        foreach (SplitVirtqueue queue in _device.Queues)
        {
            Invariant.Check(!queue.IsReady && queue.Error == QueueError.None && queue.InFlightCount == 0, $"queue {queue.Index} after a reset: ready {queue.IsReady}, error {queue.Error}, in flight {queue.InFlightCount}");
        }
    }

    public void Dispose()
    {
        _backend.Dispose();
        _memory.Dispose();
    }
}
