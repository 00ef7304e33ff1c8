using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;

namespace Virtio.Fuzz.Targets;

/// <summary>
/// <c>blk</c>: virtio-blk requests end to end. The input becomes chains a driver posts (shapes,
/// directions, header and data bytes all from the input) on a <see cref="BlockDevice"/> over a
/// <see cref="MemoryBlockBackend"/> behind virtio-mmio; one kick; then the used ring and status
/// bytes are checked against a model of the disk.
/// </summary>
/// <remarks>
/// <para>Input: byte 0 clears features (bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 FLUSH, 3 DISCARD,
/// 4 WRITE_ZEROES, 5 CONFIG_WCE, 6 forces indirect tables); then chains until the input or the
/// queue runs out, each a byte (low 3 bits: buffers - 1) and per buffer a u16 (bit 15: device-
/// writable, low 15 bits: length, capped at 1024); the readable buffers take their bytes from the
/// input in order (the first 16 are the request header: type u32, reserved u32, sector u64).</para>
/// <para>Invariants: nothing throws in device code (it would be logged and break the queue with
/// DeviceFailed); chains that follow the ring rules (readable before writable) never break the
/// queue and all come back after the one kick, each head once; a used length is at most the
/// chain's writable bytes; a used length of at least 1 means a status byte (OK, IOERR or UNSUPP) in
/// the chain's last writable byte; a read that says OK returned the model disk's bytes, a write,
/// discard or write-zeroes that says OK changed the disk as the model did, and the disk ends equal
/// to the model; no byte of guest memory outside the writable buffers and the used ring changes.</para>
/// </remarks>
internal sealed class BlkTarget : IFuzzTarget
{
    private const ushort QueueSize = 16;
    private const int BlockSize = 1024;
    private const ulong MemorySize = 128 << 10, HeapStart = 0x4000;
    private const ulong DiskSize = 64 << 10;
    private const string Serial = "fuzz-blk-serial";

    private readonly GuestMemory _memory = GuestMemory.CreateAnonymous(MemorySize);
    private readonly MemoryBlockBackend _backend = new(DiskSize);
    private readonly FaultLogger _logger = new();
    private readonly BlockDevice _device;
    private readonly MmioDriver _mmio;
    private readonly MemoryGuard _guard;
    private readonly byte[] _pristine = new byte[DiskSize];
    private readonly byte[] _model = new byte[DiskSize];
    private readonly bool[] _unknown = new bool[DiskSize]; // discarded: virtio 1.2 §5.2.6.2 leaves the contents unspecified
    private readonly Dictionary<ushort, PostedChain> _posted = new(QueueSize);
    private readonly byte[] _writable = new byte[8 * BlockSize];

    public BlkTarget()
    {
        _device = new BlockDevice(_memory, _backend, new BlockDeviceOptions { QueueSize = QueueSize, Serial = Serial }, _logger);
        _mmio = new MmioDriver(new VirtioMmioTransport(_device, new InterruptRecorder { KeepLog = false }, _logger));
        _guard = new MemoryGuard(_memory);
        for (int i = 0; i < _pristine.Length; i++)
        {
            _pristine[i] = (byte)((i * 7) + (i >> 9));
        }
    }

    public string Name => "blk";

    public void Host(Action loop) => loop();

    public void Run(ReadOnlySpan<byte> input)
    {
        var reader = new FuzzInput(input);
        byte features = reader.Byte();
        ulong wanted = ulong.MaxValue;
        ulong[] clearable = [VirtioFeatures.EventIdx, VirtioFeatures.IndirectDescriptors, BlockFeatures.Flush, BlockFeatures.Discard, BlockFeatures.WriteZeroes, BlockFeatures.ConfigWce];
        for (int bit = 0; bit < clearable.Length; bit++)
        {
            wanted &= (features & (1 << bit)) != 0 ? ~clearable[bit] : ulong.MaxValue;
        }

        bool eventIdx = (wanted & VirtioFeatures.EventIdx) != 0, indirect = (wanted & VirtioFeatures.IndirectDescriptors) != 0;
        _pristine.CopyTo(_model, 0);
        _model.CopyTo(_backend.GetSpan(0, (int)DiskSize));
        Array.Clear(_unknown);
        var guest = new GuestDriver(_memory, new GuestAddress(0x1000), QueueSize, HeapStart, BlockSize, eventIdx, indirect, 0, MemorySize - HeapStart);
        _mmio.Initialize(wanted, guest);
        SplitVirtqueue queue = _device.Queues[0];

        bool allValid = true;
        _posted.Clear();
        while (!reader.IsEmpty && _posted.Count < QueueSize && FuzzedChains.Post(ref reader, guest, (features & 0x40) != 0, ref allValid) is { } chain)
        {
            _posted[chain.Head] = chain;
        }

        _guard.Snapshot();
        _guard.AllowWrite(guest.UsedRing.Value, (ulong)guest.Layout.UsedRingSize);
        _guard.AllowWrite(guest.AvailRing.Value + SplitRingLayout.AvailIdxOffset, 2); // the guest's own kick
        foreach (PostedChain posted in _posted.Values)
        {
            FuzzedChains.AllowWrites(_guard, posted);
        }

        guest.Kick();
        _mmio.Notify(0);
        _logger.ThrowIfFaulted();
        Invariant.Check(queue.Error != QueueError.DeviceFailed, "device code threw: the queue failed");
        Invariant.Check(!allValid || queue.Error == QueueError.None, $"chains that follow the ring rules broke the queue ({queue.Error})");
        Invariant.Check(queue.Error == QueueError.None || (_device.Status & DeviceStatus.DeviceNeedsReset) != 0, $"a broken queue ({queue.Error}) without DEVICE_NEEDS_RESET");
        _guard.Verify("the blk device");

        int completed = 0, postedCount = _posted.Count;
        while (guest.TryGetUsed(out ushort head, out uint length))
        {
            Invariant.Check(++completed <= postedCount, $"{completed} completions for {postedCount} chains posted");
            Invariant.Check(_posted.Remove(head, out PostedChain? posted), $"head {head} came back but was not posted (or came back twice)");
            Complete(guest, posted, length);
        }

        Invariant.Check(!allValid || _posted.Count == 0, $"{_posted.Count} well-formed chains did not come back after the kick");
        foreach (PostedChain lost in _posted.Values)
        {
            // Served, perhaps, before a later chain broke the ring, and never published: what it
            // wrote may or may not be on the disk.
            Forget(lost);
        }

        Span<byte> disk = _backend.GetSpan(0, (int)DiskSize);
        if (!SameAsModel(disk, 0))
        {
            int at = 0;
            while (disk[at] == _model[at] || _unknown[at])
            {
                at++;
            }

            Invariant.Fail($"the disk differs from the model of the requests that said OK: byte {at} (sector {at / 512}) is 0x{disk[at]:x2}, the model says 0x{_model[at]:x2}");
        }
    }

    /// <summary>Checks one completion and applies it to the model disk.</summary>
    private void Complete(GuestDriver guest, PostedChain posted, uint length)
    {
        Invariant.Check(length <= posted.WritableLength, $"used length {length} is more than the chain's {posted.WritableLength} writable bytes");
        if (length == 0)
        {
            return; // an unparsable request: no trusted status byte
        }

        int at = FuzzedChains.ReadWritable(guest, posted, _writable);
        var status = (BlockStatus)_writable[at - 1];
        Invariant.Check(status is BlockStatus.Ok or BlockStatus.IoError or BlockStatus.Unsupported, $"status byte 0x{(byte)status:x2} in a chain used with length {length}");
        if (status != BlockStatus.Ok)
        {
            return;
        }

        ReadOnlySpan<byte> header = posted.Readable;
        Invariant.Check(header.Length >= 16, $"a request with a {header.Length}-byte header said OK");
        var type = (BlockRequestType)BinaryPrimitives.ReadUInt32LittleEndian(header);
        ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        ReadOnlySpan<byte> data = header[16..];
        int inLength = at - 1;
        switch (type)
        {
            case BlockRequestType.In:
                Invariant.Check(sector * 512 + (ulong)inLength <= DiskSize, $"a read of {inLength} bytes at sector {sector} past the disk said OK");
                Invariant.Check(SameAsModel(_writable.AsSpan(0, inLength), (int)(sector * 512)), $"a read at sector {sector} returned bytes the disk does not hold");
                break;
            case BlockRequestType.Out:
                Invariant.Check(sector * 512 + (ulong)data.Length <= DiskSize, $"a write of {data.Length} bytes at sector {sector} past the disk said OK");
                data.CopyTo(_model.AsSpan((int)(sector * 512)));
                _unknown.AsSpan((int)(sector * 512), data.Length).Clear();
                break;
            case BlockRequestType.Discard:
            case BlockRequestType.WriteZeroes:
                for (int i = 0; i + 16 <= data.Length; i += 16)
                {
                    ulong start = BinaryPrimitives.ReadUInt64LittleEndian(data[i..]);
                    uint sectors = BinaryPrimitives.ReadUInt32LittleEndian(data[(i + 8)..]);
                    Invariant.Check(start * 512 + sectors * 512UL <= DiskSize, $"a {type} of {sectors} sectors at {start} past the disk said OK");
                    _model.AsSpan((int)(start * 512), (int)(sectors * 512)).Clear();
                    _unknown.AsSpan((int)(start * 512), (int)(sectors * 512)).Fill(type == BlockRequestType.Discard);
                }

                break;
            case BlockRequestType.GetId:
                int idLength = Math.Min(inLength, 20);
                for (int i = 0; i < idLength; i++)
                {
                    byte expected = i < Serial.Length ? (byte)Serial[i] : (byte)0;
                    Invariant.Check(_writable[i] == expected, $"GET_ID byte {i} is 0x{_writable[i]:x2}");
                }

                break;
            case BlockRequestType.Flush:
                break;
            default:
                Invariant.Fail($"request type {(uint)type} said OK");
                break;
        }
    }

    /// <summary>Marks every byte the request in <paramref name="posted"/> could have changed as unknown.</summary>
    private void Forget(PostedChain posted)
    {
        ReadOnlySpan<byte> header = posted.Readable;
        if (header.Length < 16)
        {
            return;
        }

        var type = (BlockRequestType)BinaryPrimitives.ReadUInt32LittleEndian(header);
        ReadOnlySpan<byte> data = header[16..];
        if (type == BlockRequestType.Out)
        {
            ForgetRange(BinaryPrimitives.ReadUInt64LittleEndian(header[8..]), (ulong)data.Length);
        }
        else if (type is BlockRequestType.Discard or BlockRequestType.WriteZeroes)
        {
            for (int i = 0; i + 16 <= data.Length; i += 16)
            {
                ForgetRange(BinaryPrimitives.ReadUInt64LittleEndian(data[i..]), BinaryPrimitives.ReadUInt32LittleEndian(data[(i + 8)..]) * 512UL);
            }
        }
    }

    private void ForgetRange(ulong sector, ulong length)
    {
        if (sector < DiskSize / 512)
        {
            ulong start = sector * 512;
            _unknown.AsSpan((int)start, (int)Math.Min(length, DiskSize - start)).Fill(true);
        }
    }

    /// <summary>Whether <paramref name="bytes"/> equal the model from <paramref name="offset"/>, discarded bytes aside.</summary>
    private bool SameAsModel(ReadOnlySpan<byte> bytes, int offset)
    {
        if (bytes.SequenceEqual(_model.AsSpan(offset, bytes.Length)))
        {
            return true;
        }

        for (int i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] != _model[offset + i] && !_unknown[offset + i])
            {
                return false;
            }
        }

        return true;
    }

    public void Dispose()
    {
        _backend.Dispose();
        _memory.Dispose();
    }
}
