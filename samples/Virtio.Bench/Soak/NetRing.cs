using System;
using System.Buffers.Binary;
using System.Threading;
using Tmds.Linux;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.VhostUser.FrontEnd;

namespace Virtio.Bench.Soak;

/// <summary>
/// The driver side of one virtio-net rx/tx pair (queues 0 and 1) in memfd guest memory: slot i of
/// each ring is descriptor i with a 2 KiB buffer of its own (a 12-byte virtio_net_hdr, then the
/// frame), no chaining, no EVENT_IDX, every used buffer signalled. The soak's net load only: one thread.
/// </summary>
internal sealed unsafe class NetRing : IDisposable
{
    public const ushort QueueSize = 256;
    public const int HeaderLength = 12; // virtio_net_hdr with num_buffers (VERSION_1)
    public const int BufferSize = 2048;
    public const int MaxFrame = BufferSize - HeaderLength;
    private const ulong RingStride = 32 << 10; // per ring: descriptors, avail at +4 KiB, used at +8 KiB
    private const ulong AvailOffset = 4 << 10;
    private const ulong UsedOffset = 8 << 10;
    private const ulong BuffersOffset = 64 << 10;
    private const ushort DescWrite = 2;

    private readonly GuestMemory _memory;
    private readonly byte* _base;
    private readonly SplitRingLayout _layout = new(QueueSize);
    private readonly ushort[] _nextAvail = new ushort[2];
    private readonly ushort[] _lastUsed = new ushort[2];

    public NetRing()
    {
        _memory = new GuestMemory([GuestMemoryRegion.CreateMemfd(new GuestAddress(0), 2 << 20, "virtio-bench-soak-net")]);
        _base = (byte*)_memory.Regions[0].HostAddress;
        Kick = [EventFd.Create(), EventFd.Create()];
        Call = [EventFd.Create(), EventFd.Create()];
    }

    public GuestMemory Memory => _memory;

    public EventFd[] Kick { get; }

    public EventFd[] Call { get; }

    public ushort LastUsed(int queue) => _lastUsed[queue];

    public VhostUserVringSetup Setup(int queue, ushort nextAvail)
    {
        ulong ring = (ulong)queue * RingStride;
        return new(QueueSize, new GuestAddress(ring), new GuestAddress(ring + AvailOffset), new GuestAddress(ring + UsedOffset), Kick[queue], Call[queue], nextAvail);
    }

    /// <summary>The frame area of tx slot <paramref name="slot"/> (after its header).</summary>
    public Span<byte> TxFrame(int slot) => new(Buffer(1, slot) + HeaderLength, MaxFrame);

    /// <summary>The frame an rx slot received (<paramref name="length"/> as the device wrote it, header included).</summary>
    public ReadOnlySpan<byte> RxFrame(int slot, int length) => new(Buffer(0, slot) + HeaderLength, Math.Clamp(length - HeaderLength, 0, MaxFrame));

    /// <summary>Offers rx slot <paramref name="slot"/>'s buffer to the device (not yet published).</summary>
    public void PostRx(int slot) => Post(0, slot, BufferSize, DescWrite);

    /// <summary>Queues tx slot <paramref name="slot"/>'s frame of <paramref name="frameLength"/> bytes (not yet published).</summary>
    public void PostTx(int slot, int frameLength)
    {
        new Span<byte>(Buffer(1, slot), HeaderLength).Clear(); // no offloads: flags, gso_type and the rest 0
        Post(1, slot, (uint)(HeaderLength + frameLength), 0);
    }

    /// <summary>Publishes what was posted on <paramref name="queue"/> and kicks it.</summary>
    public void Publish(int queue)
    {
        // virtio 1.2 §2.7.13: descriptors and ring entries are visible before avail->idx moves (release).
        Volatile.Write(ref *(ushort*)(RingBase(queue) + AvailOffset + SplitRingLayout.AvailIdxOffset), _nextAvail[queue]);
        Kick[queue].Signal();
    }

    /// <summary>The next used element of <paramref name="queue"/>: the slot and the bytes the device wrote.</summary>
    public bool TryTakeUsed(int queue, out int slot, out int length)
    {
        byte* used = RingBase(queue) + UsedOffset;
        // §2.7.14: used->idx (acquire) before the element it covers.
        if (Volatile.Read(ref *(ushort*)(used + SplitRingLayout.UsedIdxOffset)) == _lastUsed[queue])
        {
            slot = 0;
            length = 0;
            return false;
        }

        byte* element = used + _layout.UsedElementOffset(_lastUsed[queue]);
        slot = (int)(*(uint*)element % QueueSize);
        length = (int)*(uint*)(element + 4);
        _lastUsed[queue]++;
        return true;
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for either call eventfd and consumes both.</summary>
    public void WaitCalls(int timeoutMs)
    {
        pollfd* fds = stackalloc pollfd[2];
        fds[0] = new pollfd { fd = Call[0].Fd, events = LibC.POLLIN };
        fds[1] = new pollfd { fd = Call[1].Fd, events = LibC.POLLIN };
        // SAFETY: two pollfds on the stack, outliving the call; a timeout or EINTR just returns.
        if (LibC.poll(fds, 2, timeoutMs) > 0)
        {
            Call[0].TryConsume(out _);
            Call[1].TryConsume(out _);
        }
    }

    public void Dispose()
    {
        foreach (EventFd fd in Kick)
        {
            fd.Dispose();
        }

        foreach (EventFd fd in Call)
        {
            fd.Dispose();
        }

        _memory.Dispose();
    }

    private byte* RingBase(int queue) => _base + ((ulong)queue * RingStride);

    private byte* Buffer(int queue, int slot) => _base + BuffersOffset + ((ulong)((queue * QueueSize) + slot) * BufferSize);

    private void Post(int queue, int slot, uint length, ushort flags)
    {
        Span<byte> d = new(RingBase(queue) + SplitRingLayout.DescriptorOffset(slot), SplitRingLayout.DescriptorSize);
        BinaryPrimitives.WriteUInt64LittleEndian(d, (ulong)(Buffer(queue, slot) - _base));
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], 0);
        *(ushort*)(RingBase(queue) + AvailOffset + _layout.AvailEntryOffset(_nextAvail[queue])) = (ushort)slot;
        _nextAvail[queue]++;
    }
}
