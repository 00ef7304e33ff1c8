using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using Tmds.Linux;
using Virtio.Core.Interop;

namespace Virtio.Blk.Interop;

/// <summary>
/// One io_uring instance (linux/io_uring.h): io_uring_setup, the mmap of the submission ring, the
/// completion ring and the submission entries, pushing an entry, io_uring_enter, and reaping
/// completions. Knows nothing of block requests; <see cref="Backends.IoUringBlockBackend"/> drives it.
/// </summary>
/// <remarks>
/// One producer at a time (<see cref="TryPush"/>, <see cref="Submit"/>, <see cref="Unsubmitted"/>:
/// the caller serializes them) and one consumer (<see cref="TryReap"/>, on the reaping thread).
/// <see cref="Dispose"/> once neither runs any more.
/// </remarks>
internal sealed class IoUringRing : IDisposable
{
    private readonly SafeFdHandle _handle;
    private readonly int _fd;
    private readonly nint _sqRing;
    private readonly nuint _sqRingSize;
    private readonly nint _cqRing;
    private readonly nuint _cqRingSize;
    private readonly nint _sqeMemory;
    private readonly nuint _sqeSize;
    private readonly unsafe uint* _sqHead;
    private readonly unsafe uint* _sqTail;
    private readonly unsafe uint* _sqArray;
    private readonly uint _sqMask;
    private readonly unsafe IoUringInterop.Sqe* _sqes;
    private readonly unsafe uint* _cqHead;
    private readonly unsafe uint* _cqTail;
    private readonly uint _cqMask;
    private readonly unsafe IoUringInterop.Cqe* _cqes;
    private bool _disposed;

    /// <summary>Sets up a ring of at least <paramref name="entries"/> entries and maps it. Any thread.</summary>
    /// <exception cref="IOException">io_uring_setup or mmap failed; the message holds the errno.</exception>
    public unsafe IoUringRing(uint entries)
    {
        IoUringInterop.Params p = default;

        // SAFETY: `p` is a local io_uring_params the kernel fills and that outlives the call.
        int fd = IoUringInterop.Setup(entries, &p);
        if (fd < 0)
        {
            throw new IOException($"io_uring_setup failed with errno {-fd}.", -fd);
        }

        _handle = new SafeFdHandle(fd);
        _fd = fd;
        try
        {
            bool single = (p.Features & IoUringInterop.FeatSingleMmap) != 0;
            _sqRingSize = p.SqOff.Array + (p.SqEntries * sizeof(uint));
            _cqRingSize = p.CqOff.Cqes + (p.CqEntries * (uint)IoUringInterop.CqeSize);
            if (single)
            {
                _sqRingSize = _cqRingSize = Math.Max(_sqRingSize, _cqRingSize);
            }

            _sqRing = Map(_sqRingSize, IoUringInterop.OffSqRing);
            _cqRing = single ? _sqRing : Map(_cqRingSize, IoUringInterop.OffCqRing);
            _sqeSize = p.SqEntries * (uint)IoUringInterop.SqeSize;
            _sqeMemory = Map(_sqeSize, IoUringInterop.OffSqes);

            // SAFETY: the offsets come from the kernel for these mappings, which are at least the
            // sizes computed from them above and stay mapped until Dispose.
            byte* sq = (byte*)_sqRing;
            byte* cq = (byte*)_cqRing;
            _sqHead = (uint*)(sq + p.SqOff.Head);
            _sqTail = (uint*)(sq + p.SqOff.Tail);
            _sqArray = (uint*)(sq + p.SqOff.Array);
            _sqMask = *(uint*)(sq + p.SqOff.RingMask);
            Entries = *(uint*)(sq + p.SqOff.RingEntries);
            _sqes = (IoUringInterop.Sqe*)_sqeMemory;
            _cqHead = (uint*)(cq + p.CqOff.Head);
            _cqTail = (uint*)(cq + p.CqOff.Tail);
            _cqMask = *(uint*)(cq + p.CqOff.RingMask);
            _cqes = (IoUringInterop.Cqe*)(cq + p.CqOff.Cqes);
        }
        catch
        {
            Unmap();
            _handle.Dispose();
            throw;
        }
    }

    /// <summary>Submission entries: the most submissions in the ring at once.</summary>
    public uint Entries { get; }

    /// <summary>Entries pushed that the kernel has not consumed yet. Under the producer's serialization.</summary>
    public unsafe uint Unsubmitted
    {
        get
        {
            // SAFETY: both point into the submission ring, mapped until Dispose.
            return *_sqTail - Volatile.Read(ref *_sqHead);
        }
    }

    /// <summary>io_uring_enter calls made by <see cref="Submit"/> so far (a test reads it; under the producer's serialization).</summary>
    public long SubmitCalls { get; private set; }

    /// <summary>Whether a ring of one entry can be set up here (kernel.io_uring_disabled, seccomp, old kernels say no). Any thread.</summary>
    /// <param name="errno">Why not, when it returns false.</param>
    /// <returns>True when io_uring works.</returns>
    public static unsafe bool Probe(out int errno)
    {
        IoUringInterop.Params p = default;

        // SAFETY: `p` is a local the kernel fills and that outlives the call.
        int fd = IoUringInterop.Setup(1, &p);
        if (fd < 0)
        {
            errno = -fd;
            return false;
        }

        new SafeFdHandle(fd).Dispose();
        errno = 0;
        return true;
    }

    /// <summary>
    /// io_uring_register(IORING_REGISTER_EVENTFD): the kernel signals <paramref name="eventFd"/> each
    /// time it posts a completion, so an epoll loop can watch the ring. Once, before the ring is used.
    /// </summary>
    /// <exception cref="IOException">io_uring_register failed; the message holds the errno.</exception>
    public void RegisterCompletionEventFd(SafeHandle eventFd)
    {
        bool added = false;
        eventFd.DangerousAddRef(ref added);
        try
        {
            int rc = IoUringInterop.RegisterCompletionEventFd(_fd, (int)eventFd.DangerousGetHandle());
            if (rc < 0)
            {
                throw new IOException($"io_uring_register(IORING_REGISTER_EVENTFD) failed with errno {-rc}.", -rc);
            }
        }
        finally
        {
            if (added)
            {
                eventFd.DangerousRelease();
            }
        }
    }

    /// <summary>Writes one submission entry and publishes it; the kernel sees it at the next <see cref="Submit"/>.</summary>
    /// <returns>False, writing nothing, when the submission ring is full.</returns>
    public unsafe bool TryPush(byte opcode, bool withFile, int fileFd, ulong offset, ulong address, uint length, uint opFlags, ulong userData)
    {
        // SAFETY: head, tail and the array point into the submission ring and `sqe` into the
        // submission entries, both mapped until Dispose; index is masked to the ring's size.
        uint tail = *_sqTail;
        if (tail - Volatile.Read(ref *_sqHead) >= Entries)
        {
            return false; // never overwrite an entry the kernel has not consumed
        }

        uint index = tail & _sqMask;
        IoUringInterop.Sqe* sqe = _sqes + index;
        *sqe = default;
        sqe->Opcode = opcode;
        sqe->Fd = withFile ? fileFd : -1;
        sqe->Offset = offset;
        sqe->Address = address;
        sqe->Length = length;
        sqe->OpFlags = opFlags;
        sqe->UserData = userData;
        _sqArray[index] = index;

        // The entry is complete before the kernel can see the new tail.
        Volatile.Write(ref *_sqTail, tail + 1);
        return true;
    }

    /// <summary>io_uring_enter for <paramref name="count"/> entries, retried on EINTR and EAGAIN.</summary>
    /// <returns>How many were submitted, or -errno.</returns>
    public int Submit(uint count)
    {
        SubmitCalls++;
        int submitted;
        do
        {
            submitted = IoUringInterop.Enter(_fd, count, 0, 0);
        }
        while (submitted == -LibC.EINTR || submitted == -LibC.EAGAIN);

        return submitted;
    }

    /// <summary>io_uring_enter: submits <paramref name="toSubmit"/> entries and waits for a completion. Once; the caller retries.</summary>
    /// <returns>How many were submitted, or -errno (-EINTR and -EAGAIN too).</returns>
    public int SubmitAndWait(uint toSubmit) => IoUringInterop.Enter(_fd, toSubmit, 1, IoUringInterop.EnterGetEvents);

    /// <summary>Whether a completion waits in the completion ring (one acquire load). On the consuming thread.</summary>
    public unsafe bool HasCompletions
    {
        get
        {
            // SAFETY: head and tail point into the completion ring, mapped until Dispose.
            return *_cqHead != Volatile.Read(ref *_cqTail);
        }
    }

    /// <summary>Takes the next completion, if any. On the consuming thread.</summary>
    /// <param name="completion">The completion entry.</param>
    /// <returns>False when the completion ring is empty.</returns>
    public unsafe bool TryReap(out IoUringInterop.Cqe completion)
    {
        // SAFETY: head, tail and the entries point into the completion ring, mapped until Dispose;
        // the index is masked to the ring's size.
        uint head = *_cqHead;
        if (head == Volatile.Read(ref *_cqTail))
        {
            completion = default;
            return false;
        }

        completion = _cqes[head & _cqMask];

        // The entry is copied out before the kernel may reuse its slot.
        Volatile.Write(ref *_cqHead, head + 1);
        return true;
    }

    /// <summary>Unmaps the rings and closes the ring's fd. Once neither side uses the ring.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Unmap();
        _handle.Dispose();
    }

    private nint Map(nuint length, long offset)
    {
        nint address = IoUringInterop.Mmap(0, length, IoUringInterop.PROT_READ | IoUringInterop.PROT_WRITE, IoUringInterop.MAP_SHARED | IoUringInterop.MAP_POPULATE, _fd, offset);
        if (address == -1)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"mmap of the io_uring at 0x{offset:x} failed with errno {errno}.", errno);
        }

        return address;
    }

    private void Unmap()
    {
        if (_sqeMemory != 0)
        {
            IoUringInterop.Munmap(_sqeMemory, _sqeSize);
        }

        if (_cqRing != 0 && _cqRing != _sqRing)
        {
            IoUringInterop.Munmap(_cqRing, _cqRingSize);
        }

        if (_sqRing != 0)
        {
            IoUringInterop.Munmap(_sqRing, _sqRingSize);
        }
    }
}
