using System;
using Tmds.Linux;

namespace Virtio.Kvm.Interop;

/// <summary>ioctl(2) on a <see cref="KvmFdHandle"/>, keeping the descriptor open for the call.</summary>
internal static class KvmCall
{
    /// <summary>Issues the ioctl; returns its non-negative result or -errno. EINTR is returned, not retried.</summary>
    public static unsafe int Ioctl(KvmFdHandle fd, int request, void* argument)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            // SAFETY: the caller passes a pointer to a local (or pinned) argument of the size the request
            // encodes, valid for the duration of the call; DangerousAddRef keeps the descriptor open.
            int rc = LibC.ioctl((int)fd.DangerousGetHandle(), request, argument);
            return rc >= 0 ? rc : -LibC.errno;
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    /// <summary>Issues an ioctl whose argument is an integer; returns its result or -errno.</summary>
    // SAFETY: the integer is passed through as the ioctl's argument; the kernel does not dereference it for these requests.
    public static unsafe int Ioctl(KvmFdHandle fd, int request, nint argument) => Ioctl(fd, request, (void*)argument);

    /// <summary>Issues the ioctl, retrying on EINTR, and throws <see cref="KvmException"/> on failure.</summary>
    public static unsafe int IoctlOrThrow(KvmFdHandle fd, int request, void* argument, string name)
    {
        // SAFETY: `argument` is passed on unchanged; the caller's invariant (see Ioctl) holds for every retry.
        int rc;
        do
        {
            rc = Ioctl(fd, request, argument);
        }
        while (rc == -LibC.EINTR);

        if (rc < 0)
        {
            throw new KvmException(name, -rc);
        }

        return rc;
    }

    /// <summary>Integer-argument form of <see cref="IoctlOrThrow(KvmFdHandle, int, void*, string)"/>.</summary>
    // SAFETY: as the integer form of Ioctl: the argument is a value, not a pointer the kernel follows.
    public static unsafe int IoctlOrThrow(KvmFdHandle fd, int request, nint argument, string name) =>
        IoctlOrThrow(fd, request, (void*)argument, name);

    /// <summary>
    /// Issues the ioctl on a struct held in <paramref name="state"/>, which must be the
    /// <paramref name="size"/> bytes the request encodes; throws <see cref="KvmException"/> on failure.
    /// </summary>
    public static unsafe void IoctlOrThrow(KvmFdHandle fd, int request, Span<byte> state, int size, string name)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(state.Length, size, nameof(state));
        fixed (byte* p = state)
        {
            // SAFETY: `p` points at the `size` bytes the request encodes, pinned for the call.
            IoctlOrThrow(fd, request, p, name);
        }
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> when <paramref name="fd"/> is closed.</summary>
    public static void ThrowIfClosed(KvmFdHandle fd, object owner) => ObjectDisposedException.ThrowIf(fd.IsClosed, owner);
}
