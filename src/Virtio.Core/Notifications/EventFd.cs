using System;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Threading;
using Tmds.Linux;
using Virtio.Core.Interop;

namespace Virtio.Core.Notifications;

/// <summary>
/// A Linux eventfd(2): a 64-bit counter in the kernel that one side adds to (<see cref="Signal"/>) and
/// the other reads and clears (<see cref="TryConsume"/>). It is what KVM watches as an irqfd, what it
/// signals as an ioeventfd, and what vhost-user passes as call and kick fds.
/// </summary>
/// <remarks>
/// <para>
/// Descriptors made by <see cref="Create"/> are non-blocking and close-on-exec. <see cref="Signal"/> and
/// <see cref="TryConsume"/> are safe to call from any thread at the same time, allocate nothing and
/// never block. The instance owns its descriptor and closes it on <see cref="SafeHandle.Dispose()"/>;
/// a descriptor handed to a hypervisor stays open there until the hypervisor is told to drop it.
/// </para>
/// <para>
/// A descriptor received from a peer (<see cref="FromOwnedHandle"/>) is hostile: the peer shares its
/// open file description, so it may have made it blocking, make it blocking again at any time, fill
/// the counter or drain it. Such an instance is switched to non-blocking when wrapped, reads it with
/// preadv2(RWF_NOWAIT), which cannot block whatever the flags say, and writes it only after poll(2)
/// with a zero timeout said a write fits; only a peer that both clears O_NONBLOCK and fills the
/// counter between that poll and the write (microseconds) could still block a write.
/// </para>
/// </remarks>
[SuppressMessage(
    "Interoperability",
    "CA1419:Provide a parameterless constructor that is as visible as the containing type",
    Justification = "Never marshalled as a P/Invoke return value; instances come only from Create and FromOwnedHandle.")]
public sealed class EventFd : SafeHandle
{
    private static bool s_noWaitReadUnsupported; // the kernel refused RWF_NOWAIT on an eventfd once: poll first instead

    private bool _peerShared;

    private EventFd()
        : base(invalidHandleValue: new IntPtr(-1), ownsHandle: true)
    {
    }

    /// <summary>Whether the descriptor is unusable (negative); fd 0 is a valid descriptor.</summary>
    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>
    /// The descriptor number, to hand to a hypervisor (irqfd, ioeventfd) or to send to a vhost-user peer.
    /// Any thread may read it while the instance is open; it is only meaningful until disposal.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The instance has been disposed.</exception>
    public int Fd
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsClosed, this);
            return (int)handle;
        }
    }

    /// <summary>
    /// Creates a non-blocking, close-on-exec eventfd whose counter starts at <paramref name="initialValue"/>.
    /// Any thread may call it.
    /// </summary>
    /// <param name="initialValue">The counter's first value; non-zero makes it start signalled.</param>
    /// <returns>The new instance, owning its descriptor.</returns>
    /// <exception cref="System.IO.IOException">eventfd(2) failed (for example EMFILE); the message holds the errno.</exception>
    public static EventFd Create(uint initialValue = 0)
    {
        var eventFd = new EventFd();
        int fd = LibC.eventfd(initialValue, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC);
        if (fd < 0)
        {
            int errno = LibC.errno;
            eventFd.SetHandleAsInvalid();
            NativeError.ThrowIOException("eventfd", errno);
        }

        eventFd.SetHandle(new IntPtr(fd));
        return eventFd;
    }

    /// <summary>
    /// Wraps a descriptor received from elsewhere (a vhost-user message, a parent process) and takes
    /// ownership: disposing the result closes <paramref name="fd"/>. Makes the descriptor non-blocking,
    /// and from then on reads and writes it so that a peer sharing it cannot block the caller (see the
    /// remarks). Any thread may call it.
    /// </summary>
    /// <param name="fd">An open eventfd, blocking or not.</param>
    /// <returns>The instance that now owns <paramref name="fd"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fd"/> is negative.</exception>
    public static EventFd FromOwnedHandle(int fd)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        var eventFd = new EventFd { _peerShared = true };
        eventFd.SetHandle(new IntPtr(fd));
        int flags = LibC.fcntl(fd, LibC.F_GETFL);
        if (flags >= 0 && (flags & LibC.O_NONBLOCK) == 0)
        {
            _ = LibC.fcntl(fd, LibC.F_SETFL, flags | LibC.O_NONBLOCK);
        }

        return eventFd;
    }

    /// <summary>
    /// Adds 1 to the counter, waking whoever waits on the descriptor. Any thread may call it; it does not
    /// allocate or block. A counter already at its maximum is already signalled, so EAGAIN is ignored.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The instance has been disposed.</exception>
    /// <exception cref="System.IO.IOException">write(2) failed with an errno other than EAGAIN or EINTR.</exception>
    public unsafe void Signal()
    {
        ulong one = 1;

        // SAFETY: `one` is a local that outlives the call; TransferCounter writes its 8 bytes only.
        // A counter already at its maximum is already signalled: EAGAIN is ignored.
        _ = TransferCounter(&one, write: true);
    }

    /// <summary>
    /// Reads and clears the counter. Any thread may call it (usually the I/O thread whose handler the
    /// descriptor woke); it does not allocate or block.
    /// </summary>
    /// <param name="count">The sum of the signals since the last consume; 0 when the result is false.</param>
    /// <returns>True if the counter was non-zero; false when nothing was signalled (EAGAIN).</returns>
    /// <exception cref="ObjectDisposedException">The instance has been disposed.</exception>
    /// <exception cref="System.IO.IOException">read(2) failed with an errno other than EAGAIN or EINTR.</exception>
    public unsafe bool TryConsume(out ulong count)
    {
        ulong value = 0;
        // SAFETY: `value` is a local that outlives the call; TransferCounter reads into its 8 bytes only.
        bool consumed = TransferCounter(&value, write: false);
        count = consumed ? value : 0;
        return consumed;
    }

    /// <summary>
    /// Writes or reads the 8-byte counter once, retrying on EINTR, with a reference on the handle for the
    /// length of the call.
    /// </summary>
    /// <returns>False on EAGAIN (counter full for a write, zero for a read); true otherwise.</returns>
    private unsafe bool TransferCounter(ulong* value, bool write)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            int fd = (int)handle;
            if (_peerShared && write && !CanWrite(fd))
            {
                return false; // the counter is full: already signalled
            }

            long done;
            do
            {
                // SAFETY: `value` points at the caller's local, which outlives the call; the kernel reads or
                // writes exactly its 8 bytes, and DangerousAddRef above keeps the descriptor open.
                done = write
                    ? LibC.write(fd, value, sizeof(ulong))
                    : _peerShared ? ReadNoWait(fd, value) : LibC.read(fd, value, sizeof(ulong));
            }
            while (done < 0 && LibC.errno == LibC.EINTR);

            if (done >= 0)
            {
                return true;
            }

            int errno = LibC.errno;
            if (errno != LibC.EAGAIN)
            {
                NativeError.ThrowIOException(write ? "eventfd write" : "eventfd read", errno);
            }

            return false;
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    /// <summary>Whether a write of 1 fits in the counter now (poll POLLOUT, zero timeout), so write(2) cannot block.</summary>
    private static unsafe bool CanWrite(int fd)
    {
        pollfd entry = default;
        entry.fd = fd;
        entry.events = (short)LibC.POLLOUT;
        int ready;
        do
        {
            // SAFETY: `entry` is a local that outlives the call; the kernel writes only its revents.
            ready = LibC.poll(&entry, 1, 0);
        }
        while (ready < 0 && LibC.errno == LibC.EINTR);

        // An error (EBADF on a closed peer is impossible here: we hold the descriptor) lets write report it.
        return ready != 0;
    }

    /// <summary>
    /// Reads the counter without blocking whatever the descriptor's flags: preadv2(RWF_NOWAIT), or
    /// where the kernel refuses that for eventfds, poll(POLLIN, 0) first (a drain by the peer between
    /// the two could then still block; Linux has accepted RWF_NOWAIT on eventfd reads since 6.8).
    /// </summary>
    private static unsafe long ReadNoWait(int fd, ulong* value)
    {
        if (!Volatile.Read(ref s_noWaitReadUnsupported))
        {
            var iov = new IoVec((nint)value, sizeof(ulong));

            // SAFETY: `iov` is a local describing the caller's 8-byte local; offset -1 is the file position
            // (none for an eventfd); the kernel writes at most 8 bytes.
            long done = EventFdInterop.PReadV2(fd, &iov, 1, -1, EventFdInterop.RWF_NOWAIT);
            if (done >= 0 || (Marshal.GetLastPInvokeError() is var errno && errno != LibC.EOPNOTSUPP && errno != LibC.EINVAL))
            {
                return done; // the errno stays where LibC.errno reads it
            }

            Volatile.Write(ref s_noWaitReadUnsupported, true);
        }

        pollfd entry = default;
        entry.fd = fd;
        entry.events = (short)LibC.POLLIN;

        // SAFETY: `entry` is a local that outlives the call; the kernel writes only its revents.
        int ready = LibC.poll(&entry, 1, 0);
        if (ready == 0)
        {
            Marshal.SetLastPInvokeError(LibC.EAGAIN); // where LibC.errno reads it
            return -1;
        }

        // SAFETY: as for read(2) in TransferCounter: the caller's 8-byte local, the descriptor held open.
        return LibC.read(fd, value, sizeof(ulong));
    }

    /// <summary>Closes the descriptor; called once by the runtime when the last reference is released.</summary>
    /// <returns>True if close(2) succeeded.</returns>
    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
