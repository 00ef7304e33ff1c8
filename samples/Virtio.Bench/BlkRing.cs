using System;
using System.Buffers.Binary;
using System.Threading;
using Tmds.Linux;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.VhostUser.FrontEnd;

namespace Virtio.Bench;

/// <summary>
/// The driver side of one virtio-blk split ring in memfd guest memory, allocation-free per request:
/// slot i owns descriptors 3i (16-byte header), 3i+1 (data) and 3i+2 (status), all written once, so
/// posting a request writes the header's sector, one avail entry and (on publish) avail->idx. Used
/// only by the bench thread. Tests use Virtio.Testing's GuestDriver instead, which allocates per chain.
/// </summary>
internal sealed unsafe class BlkRing : IDisposable
{
    private const ulong RingsOffset = 0;
    private const ulong AvailOffset = 16 << 10;  // descriptor table: at most 16 KiB (1024 entries)
    private const ulong UsedOffset = 20 << 10;   // avail ring: at most 2054 bytes
    private const ulong HeadersOffset = 64 << 10; // used ring: at most 8198 bytes
    private const ulong DataOffset = 1 << 20;
    private const int HeaderStride = 32;           // 16-byte header, status byte at +16
    private const ushort DescNext = 1;
    private const ushort DescWrite = 2;
    private const ushort AvailNoInterrupt = 1;
    private const ushort UsedNoNotify = 1;

    private readonly GuestMemory _memory;
    private readonly byte* _base;
    private readonly SplitRingLayout _layout;
    private readonly ushort* _availFlags;
    private readonly ushort* _availIdx;
    private readonly ushort* _usedEvent;
    private readonly ushort* _usedFlags;
    private readonly ushort* _usedIdx;
    private readonly ushort* _availEvent;
    private readonly int _blockSize;
    private readonly bool _eventIdx;
    private ushort _nextAvail;
    private ushort _availAtLastKick;
    private ushort _lastUsed;

    public BlkRing(int slots, int blockSize, bool write, bool eventIdx)
    {
        Slots = slots;
        _blockSize = blockSize;
        _eventIdx = eventIdx;
        QueueSize = (ushort)Math.Max(64, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(3 * slots)));
        _layout = new SplitRingLayout(QueueSize);
        ulong size = (DataOffset + ((ulong)slots * (ulong)blockSize) + (2ul << 20) - 1) & ~((2ul << 20) - 1);
        _memory = new GuestMemory([GuestMemoryRegion.CreateMemfd(new GuestAddress(0), size, "virtio-bench-guest")]);
        _base = (byte*)_memory.Regions[0].HostAddress;
        // SAFETY: every offset below lies inside the mapping: the ring parts in the first 64 KiB
        // (sized by the layout for QueueSize <= 1024), headers below 1 MiB (slots <= 341), data after.
        _availFlags = (ushort*)(_base + AvailOffset + SplitRingLayout.AvailFlagsOffset);
        _availIdx = (ushort*)(_base + AvailOffset + SplitRingLayout.AvailIdxOffset);
        _usedEvent = (ushort*)(_base + AvailOffset + (ulong)_layout.UsedEventOffset);
        _usedFlags = (ushort*)(_base + UsedOffset + SplitRingLayout.UsedFlagsOffset);
        _usedIdx = (ushort*)(_base + UsedOffset + SplitRingLayout.UsedIdxOffset);
        _availEvent = (ushort*)(_base + UsedOffset + (ulong)_layout.AvailEventOffset);
        SetDirection(write);
    }

    public int Slots { get; }

    public ushort QueueSize { get; }

    public GuestMemory Memory => _memory;

    public EventFd Kick { get; } = EventFd.Create();

    public EventFd Call { get; } = EventFd.Create();

    public VhostUserVringSetup Setup() =>
        new(QueueSize, new GuestAddress(RingsOffset), new GuestAddress(AvailOffset), new GuestAddress(UsedOffset), Kick, Call);

    /// <summary>Writes every slot's three descriptors and request type for reads or writes (nothing may be in flight).</summary>
    public void SetDirection(bool write)
    {
        for (int slot = 0; slot < Slots; slot++)
        {
            SetDirection(slot, write);
        }
    }

    /// <summary>Writes slot <paramref name="slot"/>'s three descriptors and request type for a read or a write (the slot must not be in flight).</summary>
    public void SetDirection(int slot, bool write)
    {
        ulong header = HeadersOffset + ((ulong)slot * HeaderStride);
        WriteDescriptor(3 * slot, header, 16, DescNext, (ushort)((3 * slot) + 1));
        WriteDescriptor((3 * slot) + 1, DataOffset + ((ulong)slot * (ulong)_blockSize), (uint)_blockSize, (ushort)(DescNext | (write ? 0 : DescWrite)), (ushort)((3 * slot) + 2));
        WriteDescriptor((3 * slot) + 2, header + 16, 1, DescWrite, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(HeaderSpan(slot), write ? 1u : 0u);
    }

    /// <summary>The used index the driver has consumed up to: after a drained back end hung up, also the avail index it stopped at.</summary>
    public ushort LastUsed => _lastUsed;

    public Span<byte> Data(int slot) => new(_base + DataOffset + ((ulong)slot * (ulong)_blockSize), _blockSize);

    /// <summary>Writes slot <paramref name="slot"/>'s sector and puts its head on the avail ring (not yet published).</summary>
    public void Post(int slot, ulong sector)
    {
        Span<byte> header = HeaderSpan(slot);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
        header[16] = 0xFF; // status: the device overwrites it
        *(ushort*)(_base + AvailOffset + (ulong)_layout.AvailEntryOffset(_nextAvail)) = (ushort)(3 * slot);
        _nextAvail++;
    }

    /// <summary>Publishes the posted heads and kicks when the device asks for it; true when it kicked.</summary>
    public bool Publish()
    {
        ushort old = _availAtLastKick;
        ushort now = _nextAvail;
        if (old == now)
        {
            return false;
        }

        // virtio 1.2 §2.7.13: the ring entries and descriptors are visible before avail->idx moves (release).
        Volatile.Write(ref *_availIdx, now);
        _availAtLastKick = now;
        // §2.7.10 / EVENT_IDX: our idx store is visible before we read avail_event or used->flags (full fence).
        Interlocked.MemoryBarrier();
        bool kick = _eventIdx
            ? (ushort)(now - Volatile.Read(ref *_availEvent) - 1) < (ushort)(now - old)
            : (Volatile.Read(ref *_usedFlags) & UsedNoNotify) == 0;
        if (kick)
        {
            Kick.Signal();
        }

        return kick;
    }

    /// <summary>Takes the next used element: the slot and its status byte; false when the device used nothing new.</summary>
    public bool TryTakeUsed(out int slot, out byte status)
    {
        // §2.7.14: read used->idx (acquire) before the element it covers.
        if (Volatile.Read(ref *_usedIdx) == _lastUsed)
        {
            slot = 0;
            status = 0;
            return false;
        }

        uint id = *(uint*)(_base + UsedOffset + (ulong)_layout.UsedElementOffset(_lastUsed));
        _lastUsed++;
        slot = (int)(id / 3);
        status = HeaderSpan(slot)[16];
        return true;
    }

    /// <summary>Poll mode: no used-buffer notifications (NO_INTERRUPT, and used_event one behind what we consumed).</summary>
    public void SuppressCalls()
    {
        Volatile.Write(ref *_availFlags, AvailNoInterrupt);
        // EVENT_IDX: the device signals when used->idx passes used_event; lastUsed-1 is never passed.
        Volatile.Write(ref *_usedEvent, (ushort)(_lastUsed - 1));
    }

    /// <summary>Interrupt mode: asks for a call at the next used element, then says whether one is already there (so the caller must not sleep).</summary>
    public bool EnableCallsAndCheck()
    {
        Volatile.Write(ref *_availFlags, 0);
        Volatile.Write(ref *_usedEvent, _lastUsed);
        // §2.7.10: the request for a notification is visible before we re-read used->idx (full fence),
        // or a completion between the two would neither be seen nor signalled.
        Interlocked.MemoryBarrier();
        return Volatile.Read(ref *_usedIdx) != _lastUsed;
    }

    /// <summary>Waits (at most <paramref name="timeoutMs"/>) for the call eventfd; returns how many signals it consumed.</summary>
    public long WaitCall(int timeoutMs)
    {
        pollfd fd = default;
        fd.fd = Call.Fd;
        fd.events = LibC.POLLIN;
        // SAFETY: fd is a local pollfd, one entry, outliving the call.
        // A timeout or EINTR (0 or -1) just means no call yet: the caller re-checks the used ring.
        return LibC.poll(&fd, 1, timeoutMs) > 0 ? DrainCalls() : 0;
    }

    /// <summary>
    /// Makes the first call of each system call the request loop uses (eventfd write and read, poll with
    /// a zero timeout) before the loop starts: the first call of each binds its entry point, which
    /// allocates about 40 bytes once, and the loop's allocation count should see none of that. The kick
    /// it sends finds no new avail entry, which a device must accept (nothing is posted yet).
    /// </summary>
    public void WarmUp()
    {
        Kick.Signal();
        WaitCall(0);
        DrainCalls();
    }

    /// <summary>Consumes the call eventfd's counter: the signals since the last drain.</summary>
    public long DrainCalls() => Call.TryConsume(out ulong count) ? (long)count : 0;

    public void Dispose()
    {
        Kick.Dispose();
        Call.Dispose();
        _memory.Dispose();
    }

    private Span<byte> HeaderSpan(int slot) => new(_base + HeadersOffset + ((ulong)slot * HeaderStride), HeaderStride);

    private void WriteDescriptor(int index, ulong address, uint length, ushort flags, ushort next)
    {
        Span<byte> d = new(_base + RingsOffset + (ulong)SplitRingLayout.DescriptorOffset(index), SplitRingLayout.DescriptorSize);
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], next);
    }
}
