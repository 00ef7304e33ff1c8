using System;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// Lays one chain out by hand (descriptor i at table slot i, buffers packed from <see cref="Heap"/>),
/// pops it and gathers its segments: the layouts a hostile driver may choose, without the driver's allocator.
/// </summary>
internal sealed class ChainRig : IDisposable
{
    public const ulong Heap = 1 << 20;
    private const ushort Next = 1, Write = 2;

    private readonly GuestDriver _driver = new(queueSize: 64);
    private readonly SplitVirtqueue _queue;
    private ulong _cursor = Heap;
    private ushort _count;

    public ChainRig() => _queue = _driver.CreateDeviceQueue();

    public IoSegment[] Segments { get; } = new IoSegment[64];

    public int ReadableCount { get; private set; }

    public int Count { get; private set; }

    public QueueError Error { get; private set; }

    public ReadOnlySpan<IoSegment> Readable => Segments.AsSpan(0, ReadableCount);

    public ReadOnlySpan<IoSegment> Writable => Segments.AsSpan(ReadableCount, Count - ReadableCount);

    /// <summary>Adds a buffer holding <paramref name="bytes"/>; returns its guest address.</summary>
    public GuestAddress Add(ReadOnlySpan<byte> bytes, bool writable = false, ulong? address = null)
    {
        ulong at = address ?? _cursor;
        if (address is null)
        {
            _cursor += (ulong)bytes.Length + 8; // a gap, so a bug that reads on past a buffer is seen
            bytes.CopyTo(_driver.Span(new GuestAddress(at), bytes.Length));
        }

        if (_count > 0)
        {
            // Link the previous descriptor to this one.
            Span<byte> previous = _driver.Span(new GuestAddress(_driver.DescriptorTable.Value + (16u * (uint)(_count - 1)) + 12), 2);
            previous[0] |= (byte)Next;
        }

        _driver.WriteDescriptor(_count, at, (uint)bytes.Length, writable ? Write : (ushort)0, (ushort)(_count + 1));
        _count++;
        return new GuestAddress(at);
    }

    public GuestAddress AddWritable(int length) => Add(new byte[length], writable: true);

    public Span<byte> Guest(GuestAddress address, int length) => _driver.Span(address, length);

    /// <summary>Pops the chain and gathers it into the first <paramref name="room"/> segments; false when the walk failed (see <see cref="Error"/>).</summary>
    public bool Gather(int room = 64)
    {
        _driver.PutOnAvailRing(0);
        _driver.Kick();
        if (!_queue.TryPopChain(out DescriptorChain chain))
        {
            throw new InvalidOperationException("pop failed");
        }

        bool ok = chain.TryGather(Segments.AsSpan(0, room), out int readable, out int count);
        ReadableCount = readable;
        Count = count;
        Error = chain.Error;
        return ok;
    }

    public void Dispose() => _driver.Dispose();
}
