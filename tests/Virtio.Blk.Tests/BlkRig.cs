using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Transport;
using Virtio.Testing;

namespace Virtio.Blk.Tests;

/// <summary>A request the guest posted and has not yet consumed.</summary>
internal readonly record struct Pending(int Queue, ushort Head);

/// <summary>What the guest found when the device returned a request.</summary>
internal sealed record Completion(byte Status, uint Length, byte[] Data)
{
    public BlockStatus BlockStatus => (BlockStatus)Status;
}

/// <summary>
/// A block device behind virtio-mmio with one guest driver per queue: the test plays a virtio-blk
/// driver (header, data buffers, status byte), kicks through QueueNotify and waits on interrupts.
/// Drive it from one thread.
/// </summary>
internal sealed class BlkRig : IDisposable
{
    public const byte StatusSentinel = 0xFF;
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private const ulong HeapStart = 16 << 20;
    private const ulong HeapPerQueue = 8 << 20;

    private readonly Dictionary<ushort, (List<(GuestAddress Address, int Length, bool Writable)> Buffers, int InLength, bool HasStatus)>[] _posted;
    private readonly Dictionary<ushort, Completion>[] _done;
    private readonly ushort _queueSize;
    private readonly bool _eventIdx;
    private readonly bool _indirect;
    private readonly int _blockSize;

    public BlkRig(IBlockBackend backend, BlockDeviceOptions? options = null, ulong wanted = ulong.MaxValue, bool eventIdx = true, bool indirect = false, int blockSize = 4096, ushort queueSize = 64)
    {
        options ??= new BlockDeviceOptions { QueueSize = queueSize, Serial = "virtio-blk-serial-0123456789" };
        Options = options;
        Queues = options.QueueCount;
        _queueSize = queueSize;
        _eventIdx = eventIdx;
        _indirect = indirect;
        _blockSize = blockSize;
        Wanted = wanted & ~(eventIdx ? 0 : VirtioFeatures.EventIdx) & ~(indirect ? 0 : VirtioFeatures.IndirectDescriptors);
        Memory = GuestMemory.CreateAnonymous(HeapStart + ((ulong)Queues * HeapPerQueue));
        Logger = new CapturingLogger();
        Backend = backend;
        Device = new BlockDevice(Memory, backend, options, Logger);
        Line = new InterruptRecorder();
        Transport = new VirtioMmioTransport(Device, Line, Logger);
        Mmio = new MmioDriver(Transport);
        _posted = new Dictionary<ushort, (List<(GuestAddress, int, bool)>, int, bool)>[Queues];
        _done = new Dictionary<ushort, Completion>[Queues];
        Guests = [];
        Probe();
    }

    public BlockDeviceOptions Options { get; }

    public int Queues { get; }

    public ulong Wanted { get; }

    public GuestMemory Memory { get; }

    public CapturingLogger Logger { get; }

    public IBlockBackend Backend { get; }

    public BlockDevice Device { get; }

    public InterruptRecorder Line { get; }

    public VirtioMmioTransport Transport { get; }

    public MmioDriver Mmio { get; }

    public GuestDriver[] Guests { get; private set; }

    public ulong Negotiated { get; private set; }

    /// <summary>Resets the device and brings it up again with fresh rings, as a driver (re)load does.</summary>
    public void Probe(ulong? wanted = null)
    {
        var guests = new GuestDriver[Queues];
        for (int q = 0; q < Queues; q++)
        {
            guests[q] = new GuestDriver(Memory, new GuestAddress(0x1000 + ((ulong)q * 0x20000)), _queueSize, HeapStart + ((ulong)q * HeapPerQueue), _blockSize, _eventIdx, _indirect, 0, HeapPerQueue);
            _posted[q] = new();
            _done[q] = new();
        }

        Guests = guests;
        Negotiated = Mmio.Initialize(wanted ?? Wanted, guests);
    }

    /// <summary>Writes the status register 0 (device reset) through the transport.</summary>
    public void Reset() => Mmio.Status = DeviceStatus.None;

    /// <summary>Config bytes at <paramref name="offset"/> through the transport (0x100 + offset).</summary>
    public byte[] ReadConfig(int offset, int length)
    {
        var data = new byte[length];
        Transport.Read((ulong)(0x100 + offset), data);
        return data;
    }

    public void WriteConfig(int offset, byte value) => Transport.Write((ulong)(0x100 + offset), [value]);

    /// <summary>Posts a request and kicks when the device asks for it.</summary>
    /// <param name="queue">The queue.</param>
    /// <param name="type">The header's type field.</param>
    /// <param name="sector">The header's sector field.</param>
    /// <param name="outData">Device-readable payload after the header (write data, discard segments).</param>
    /// <param name="inLength">Device-writable payload before the status byte.</param>
    /// <param name="segment">The largest buffer used for payloads.</param>
    /// <param name="splitHeader">Put the header in two 8-byte buffers.</param>
    /// <param name="headerLength">Bytes of header actually sent (fewer than 16 to test short headers).</param>
    /// <param name="withStatus">Whether to add the 1-byte status buffer.</param>
    /// <param name="mergeStatus">Make the status the last byte of the last data buffer rather than its own buffer.</param>
    /// <param name="kick">Whether to publish and notify now.</param>
    public Pending Post(int queue, uint type, ulong sector, byte[]? outData = null, int inLength = 0, int segment = 4096, bool splitHeader = false, int headerLength = 16, bool withStatus = true, bool mergeStatus = false, bool kick = true)
    {
        segment = Math.Min(segment, _blockSize);
        var specs = new List<BufferSpec>();
        if (splitHeader)
        {
            specs.Add(BufferSpec.Readable(8));
            specs.Add(BufferSpec.Readable(8));
        }
        else if (headerLength > 0)
        {
            specs.Add(BufferSpec.Readable(headerLength));
        }

        int outLength = outData?.Length ?? 0;
        for (int done = 0; done < outLength; done += segment)
        {
            specs.Add(BufferSpec.Readable(Math.Min(segment, outLength - done)));
        }

        int writableTotal = inLength + (withStatus ? 1 : 0);
        if (mergeStatus)
        {
            for (int done = 0; done < writableTotal; done += segment)
            {
                specs.Add(BufferSpec.Write(Math.Min(segment, writableTotal - done)));
            }
        }
        else
        {
            for (int done = 0; done < inLength; done += segment)
            {
                specs.Add(BufferSpec.Write(Math.Min(segment, inLength - done)));
            }

            if (withStatus)
            {
                specs.Add(BufferSpec.Write(1));
            }
        }

        GuestDriver guest = Guests[queue];
        int head = guest.TryAddChain(specs.ToArray());
        if (head < 0)
        {
            throw new InvalidOperationException("The queue is full.");
        }

        var buffers = new List<(GuestAddress Address, int Length, bool Writable)>(guest.ChainBuffers((ushort)head));

        // The readable stream: header then payload.
        var stream = new byte[16 + outLength];
        BinaryPrimitives.WriteUInt32LittleEndian(stream, type);
        BinaryPrimitives.WriteUInt64LittleEndian(stream.AsSpan(8), sector);
        outData?.CopyTo(stream, 16);
        int streamOffset = 0;
        foreach (var (address, length, writable) in buffers)
        {
            Span<byte> span = guest.Span(address, length);
            if (!writable)
            {
                if (streamOffset == 0 && headerLength < 16 && !splitHeader)
                {
                    stream.AsSpan(0, length).CopyTo(span);
                    streamOffset = 16;
                    continue;
                }

                stream.AsSpan(streamOffset, length).CopyTo(span);
                streamOffset += length;
            }
            else
            {
                span.Fill(0xCC);
            }
        }

        if (withStatus)
        {
            var last = buffers[^1];
            guest.Span(new GuestAddress(last.Address.Value + (ulong)last.Length - 1), 1)[0] = StatusSentinel;
        }

        _posted[queue][(ushort)head] = (buffers, inLength, withStatus);
        if (kick)
        {
            Kick(queue);
        }

        return new Pending(queue, (ushort)head);
    }

    public void Kick(int queue)
    {
        if (Guests[queue].Kick())
        {
            Mmio.Notify((ushort)queue);
        }
    }

    /// <summary>Waits (bounded) until the device returned <paramref name="pending"/>.</summary>
    public Completion Wait(Pending pending)
    {
        Dictionary<ushort, Completion> done = _done[pending.Queue];
        while (!done.ContainsKey(pending.Head))
        {
            if (!TryCollect(pending.Queue) && !Line.UsedBufferSignal.Wait(Bound))
            {
                throw new TimeoutException($"Request {pending.Head} on queue {pending.Queue} did not complete.");
            }
        }

        Completion completion = done[pending.Head];
        done.Remove(pending.Head);
        return completion;
    }

    /// <summary>Consumes whatever the device has returned on <paramref name="queue"/>.</summary>
    /// <returns>True when something was consumed.</returns>
    public bool TryCollect(int queue)
    {
        bool any = false;
        GuestDriver guest = Guests[queue];
        while (guest.TryGetUsed(out ushort head, out uint length))
        {
            var (buffers, inLength, hasStatus) = _posted[queue][head];
            _posted[queue].Remove(head);
            var data = new byte[inLength];
            int filled = 0;
            byte status = 0;
            foreach (var (address, bufferLength, writable) in buffers)
            {
                if (!writable)
                {
                    continue;
                }

                Span<byte> span = guest.Span(address, bufferLength);
                int take = Math.Min(bufferLength, inLength - filled);
                span[..take].CopyTo(data.AsSpan(filled));
                filled += take;
            }

            if (hasStatus)
            {
                var last = buffers[^1];
                status = guest.Span(new GuestAddress(last.Address.Value + (ulong)last.Length - 1), 1)[0];
            }

            _done[queue][head] = new Completion(status, length, data);
            any = true;
        }

        return any;
    }

    public Completion Run(int queue, uint type, ulong sector, byte[]? outData = null, int inLength = 0, int segment = 4096, bool splitHeader = false, int headerLength = 16, bool withStatus = true, bool mergeStatus = false) =>
        Wait(Post(queue, type, sector, outData, inLength, segment, splitHeader, headerLength, withStatus, mergeStatus));

    public Completion Read(ulong sector, int length, int queue = 0, int segment = 4096) => Run(queue, (uint)BlockRequestType.In, sector, inLength: length, segment: segment);

    public Completion Write(ulong sector, byte[] data, int queue = 0, int segment = 4096) => Run(queue, (uint)BlockRequestType.Out, sector, data, segment: segment);

    public Completion Flush(int queue = 0) => Run(queue, (uint)BlockRequestType.Flush, 0);

    public Completion Ranges(BlockRequestType type, int queue, params (ulong Sector, uint Sectors, uint Flags)[] ranges) =>
        Run(queue, (uint)type, 0, Segments(ranges));

    public static byte[] Segments(params (ulong Sector, uint Sectors, uint Flags)[] ranges)
    {
        var data = new byte[16 * ranges.Length];
        for (int i = 0; i < ranges.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(16 * i), ranges[i].Sector);
            BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan((16 * i) + 8), ranges[i].Sectors);
            BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan((16 * i) + 12), ranges[i].Flags);
        }

        return data;
    }

    public static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = (byte)((i * 31) + (seed * 7) + (i >> 9));
        }

        return data;
    }

    public void Dispose()
    {
        Memory.Dispose();
    }
}
