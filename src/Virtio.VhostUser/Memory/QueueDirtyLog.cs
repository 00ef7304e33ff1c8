using System;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One queue's <see cref="IDirtyLog"/> while dirty logging is on: remembers, per head, the pages of the
/// device-writable buffers the walk met, and marks them in the <see cref="DirtyLogMapping"/> when the
/// chain is returned; marks ring writes as they are reported, the used ring's at its log address
/// (SET_VRING_ADDR's <c>log_guest_addr</c>, only with VHOST_VRING_F_LOG, as vhost-user.rst says).
/// </summary>
/// <remarks>
/// <para>Every writable buffer is marked whole, whatever the used length says: the used length is a
/// count, not a place (a block request's status byte comes last, after data a failed read may have
/// partly written while it reports one byte), and a buffer is the device's while the chain is in
/// flight, so marking it all is never wrong, at worst more pages than were written.</para>
/// <para>Per head, up to <see cref="RangesPerHead"/> page ranges; a buffer next to or overlapping the
/// last one extends it (scattered pages are the common case of a large read, contiguous ones of most
/// others); past that, the last range grows to cover the rest (more pages marked, none missed).</para>
/// <para>Called on the queue's processing thread (the device serializes walks and returns per queue),
/// allocating nothing. Attached to the queue only while its ring is stopped (<see cref="VringRunner"/>).</para>
/// </remarks>
internal sealed class QueueDirtyLog : IDirtyLog
{
    /// <summary>Page ranges kept per head before they are merged.</summary>
    public const int RangesPerHead = 16;

    private readonly ulong[] _first;
    private readonly ulong[] _last;
    private readonly byte[] _count;
    private DirtyLogMapping? _log;
    private EventFd? _kick;
    private ulong _usedLogAddress;
    private bool _logUsedRing;

    public QueueDirtyLog(ushort maxSize)
    {
        _first = new ulong[maxSize * RangesPerHead];
        _last = new ulong[maxSize * RangesPerHead];
        _count = new byte[maxSize];
    }

    /// <summary>
    /// Marks into <paramref name="log"/> from now on; used-ring writes at <paramref name="usedLogAddress"/>
    /// (null: VHOST_VRING_F_LOG not set, they are not logged). <paramref name="kick"/> (SET_LOG_FD) is
    /// signalled after each returned chain is marked. The ring is stopped.
    /// </summary>
    public void Attach(DirtyLogMapping log, ulong? usedLogAddress, EventFd? kick)
    {
        _log = log;
        _kick = kick;
        _logUsedRing = usedLogAddress.HasValue;
        _usedLogAddress = usedLogAddress ?? 0;
        Array.Clear(_count);
    }

    public void BufferWritable(ushort head, bool first, GuestAddress address, uint length)
    {
        if (head >= _count.Length)
        {
            return;
        }

        int count = first ? 0 : _count[head];
        if (length == 0)
        {
            _count[head] = (byte)count;
            return;
        }

        ulong firstPage = address.Value >> DirtyLogMapping.PageShift;
        ulong lastPage = (address.Value + (length - 1)) >> DirtyLogMapping.PageShift;
        int slot = (head * RangesPerHead) + count - 1;
        if (count > 0 && firstPage <= _last[slot] + 1 && lastPage + 1 >= _first[slot])
        {
            // Touches or overlaps the last range: extend it.
            _first[slot] = Math.Min(_first[slot], firstPage);
            _last[slot] = Math.Max(_last[slot], lastPage);
        }
        else if (count < RangesPerHead)
        {
            _first[slot + 1] = firstPage;
            _last[slot + 1] = lastPage;
            count++;
        }
        else
        {
            // Out of ranges: the last one covers this buffer too (and whatever lies between).
            _first[slot] = Math.Min(_first[slot], firstPage);
            _last[slot] = Math.Max(_last[slot], lastPage);
        }

        _count[head] = (byte)count;
    }

    public void ChainUsed(ushort head)
    {
        if (head >= _count.Length || _log is not DirtyLogMapping log)
        {
            return;
        }

        int start = head * RangesPerHead;
        int count = _count[head];
        for (int i = start; i < start + count; i++)
        {
            log.MarkPages(_first[i], _last[i]);
        }

        _count[head] = 0;
        if (_kick is EventFd kick)
        {
            try
            {
                kick.Signal();
            }
            catch (ObjectDisposedException)
            {
                // Replaced by a later SET_LOG_FD while a completion that outlived the drain ran.
            }
        }
    }

    public void RingWritten(GuestAddress address, int length) => _log?.Mark(address.Value, (ulong)length);

    public void UsedAreaWritten(int offset, int length)
    {
        if (_logUsedRing)
        {
            // log_guest_addr may lie anywhere: a sum that wraps goes to the top of the address space,
            // past any bitmap, and is skipped there.
            ulong at = _usedLogAddress + (ulong)offset;
            _log?.Mark(at < _usedLogAddress ? ulong.MaxValue : at, (ulong)length);
        }
    }
}
