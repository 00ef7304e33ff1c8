using System;
using System.IO;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Interop;
using InteropCalls = Virtio.Net.Interop.Interop;

namespace Virtio.Net.Backends;

/// <summary>
/// A Linux TAP interface (/dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): frames go to and come
/// from the host kernel's network stack with their virtio-net headers, so checksum and segmentation
/// offloads pass through. The fd is non-blocking and watched by the device's I/O thread.
/// </summary>
/// <remarks>
/// Creating one needs CAP_NET_ADMIN (or a TAP device owned by the caller). Transmit uses writev straight
/// from guest memory (the guest memory must be unmanaged, as a mapped VM's is); receive uses readv.
/// </remarks>
public sealed class TapNetBackend : INetBackend, IDisposable
{
    private const int MaxVectors = 1024;

    private readonly SafeFileHandle _fd;

    private TapNetBackend(SafeFileHandle fd, string name)
    {
        _fd = fd;
        InterfaceName = name;
    }

    /// <summary>The interface's name (tap0, vnt-..., as the kernel reports it).</summary>
    public string InterfaceName { get; }

    /// <inheritdoc />
    public NetOffloads Offloads => NetOffloads.Checksum | NetOffloads.Tso4 | NetOffloads.Tso6;

    /// <inheritdoc />
    public SafeHandle ReceiveReadyHandle => _fd;

    /// <summary>
    /// Creates (or attaches to) a TAP interface with one queue. Any thread.
    /// </summary>
    /// <param name="name">The interface name (at most 15 bytes); the kernel picks one (tapN) when null.</param>
    /// <returns>The backend; dispose it to close the fd (a non-persistent interface then disappears).</returns>
    /// <exception cref="UnauthorizedAccessException">The process lacks CAP_NET_ADMIN.</exception>
    /// <exception cref="IOException">/dev/net/tun is missing or an ioctl failed; the message holds the errno.</exception>
    public static TapNetBackend Create(string? name = null) => Open(name, multiQueue: false);

    /// <summary>
    /// Creates a TAP interface with <paramref name="queues"/> queues (IFF_MULTI_QUEUE): one backend,
    /// one fd, per virtio-net queue pair. Any thread.
    /// </summary>
    /// <param name="name">The interface name; the kernel picks one when null.</param>
    /// <param name="queues">Queue pairs, 1 or more.</param>
    /// <returns>One backend per queue, all on the same interface.</returns>
    /// <exception cref="UnauthorizedAccessException">The process lacks CAP_NET_ADMIN.</exception>
    /// <exception cref="IOException">/dev/net/tun is missing or an ioctl failed.</exception>
    public static TapNetBackend[] CreateMultiQueue(string? name, int queues)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queues, 1);
        var result = new TapNetBackend[queues];
        try
        {
            for (int i = 0; i < queues; i++)
            {
                result[i] = Open(i == 0 ? name : result[0].InterfaceName, multiQueue: true);
            }
        }
        catch
        {
            foreach (TapNetBackend? backend in result)
            {
                backend?.Dispose();
            }

            throw;
        }

        return result;
    }

    /// <inheritdoc />
    public void SetReceiveOffloads(NetOffloads guestOffloads)
    {
        // TUNSETOFFLOAD takes the TUN_F_* bits by value; NetOffloads uses the same values.
        int rc;
        unsafe
        {
            // SAFETY: the argument is a value, not a pointer; the kernel dereferences nothing.
            rc = InteropCalls.Ioctl((int)_fd.DangerousGetHandle(), InteropCalls.TunSetOffload, (void*)(nuint)(uint)guestOffloads);
        }

        if (rc < 0)
        {
            throw Error("TUNSETOFFLOAD", Marshal.GetLastPInvokeError());
        }
    }

    /// <inheritdoc />
    public bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame)
    {
        if (frame.Count == 0 || frame.Count + 1 > MaxVectors)
        {
            return false;
        }

        Span<byte> raw = stackalloc byte[VirtioNetHeader.Size];
        header.Write(raw);
        Span<IoVec> vectors = stackalloc IoVec[frame.Count + 1];
        for (int i = 1; i < frame.Count; i++)
        {
            ReadOnlySpan<byte> piece = frame[i];
            nint address;
            unsafe
            {
                // SAFETY: only the address is taken. A frame of several pieces always lies in guest memory,
                // which is mapped outside the managed heap (GuestMemory is an mmap): the address stays valid
                // and unmoved during the writev below.
                address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(piece));
            }

            vectors[i + 1] = new IoVec(address, (nuint)piece.Length);
        }

        // The first piece may be a caller's managed span (the contiguous form): pin it, and the header, for the call.
        ReadOnlySpan<byte> first = frame[0];
        unsafe
        {
            // SAFETY: fixed pins the header and the first piece until WriteVectors returns; the vectors hold
            // their addresses only for that call.
            fixed (byte* headerBytes = raw, firstBytes = first)
            {
                vectors[0] = new IoVec((nint)headerBytes, VirtioNetHeader.Size);
                vectors[1] = new IoVec((nint)firstBytes, (nuint)first.Length);
                return WriteVectors(vectors);
            }
        }
    }

    private bool WriteVectors(ReadOnlySpan<IoVec> vectors)
    {
        bool added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            nint written;
            do
            {
                unsafe
                {
                    // SAFETY: every vector points at live memory of the stated length that stays put for the call
                    // (the caller pins or maps it); fixed pins the vector array; DangerousAddRef keeps the fd open.
                    fixed (IoVec* pointer = vectors)
                    {
                        written = InteropCalls.WriteV((int)_fd.DangerousGetHandle(), pointer, vectors.Length);
                    }
                }
            }
            while (written < 0 && Marshal.GetLastPInvokeError() == InteropCalls.EIntr);

            return written >= 0;
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    /// <inheritdoc />
    public bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header)
    {
        length = 0;
        header = default;
        Span<byte> raw = stackalloc byte[VirtioNetHeader.Size];
        Span<IoVec> vectors = stackalloc IoVec[2];
        bool added = false;
        try
        {
            _fd.DangerousAddRef(ref added);
            nint read;
            do
            {
                unsafe
                {
                    // SAFETY: fixed pins the caller's frame (maybe a managed array) and the stack buffers for the
                    // readv; the kernel writes at most each vector's length; DangerousAddRef keeps the fd open.
                    fixed (byte* headerBytes = raw, data = frame)
                    fixed (IoVec* pointer = vectors)
                    {
                        pointer[0] = new IoVec((nint)headerBytes, VirtioNetHeader.Size);
                        pointer[1] = new IoVec((nint)data, (nuint)frame.Length);
                        read = InteropCalls.ReadV((int)_fd.DangerousGetHandle(), pointer, 2);
                    }
                }
            }
            while (read < 0 && Marshal.GetLastPInvokeError() == InteropCalls.EIntr);

            if (read < VirtioNetHeader.Size)
            {
                return false; // EAGAIN: nothing waiting (or a runt the kernel never sends)
            }

            header = VirtioNetHeader.Read(raw);
            length = (int)read - VirtioNetHeader.Size;
            return true;
        }
        finally
        {
            if (added)
            {
                _fd.DangerousRelease();
            }
        }
    }

    /// <summary>Closes the fd; a non-persistent interface disappears with its last queue.</summary>
    public void Dispose() => _fd.Dispose();

    private static TapNetBackend Open(string? name, bool multiQueue)
    {
        if (name is not null && Encoding.UTF8.GetByteCount(name) >= InteropCalls.IfNameSize)
        {
            throw new ArgumentException($"An interface name has at most {InteropCalls.IfNameSize - 1} bytes.", nameof(name));
        }

        int fd = InteropCalls.Open("/dev/net/tun", InteropCalls.ORdWr | InteropCalls.ONonBlock | InteropCalls.OCloExec);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw errno is InteropCalls.EPerm or InteropCalls.EAccess
                ? new UnauthorizedAccessException($"Opening /dev/net/tun was refused (errno {errno}): creating a TAP interface needs CAP_NET_ADMIN.")
                : Error("open /dev/net/tun", errno);
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            Span<byte> ifreq = stackalloc byte[InteropCalls.IfReqSize];
            ifreq.Clear();
            if (name is not null)
            {
                Encoding.UTF8.GetBytes(name, ifreq[..(InteropCalls.IfNameSize - 1)]);
            }

            short flags = InteropCalls.IffTap | InteropCalls.IffNoPi | InteropCalls.IffVnetHdr;
            if (multiQueue)
            {
                flags |= InteropCalls.IffMultiQueue;
            }

            MemoryMarshal.Write(ifreq[InteropCalls.IfNameSize..], in flags);
            int rc;
            unsafe
            {
                // SAFETY: ifreq is a 40-byte stack buffer, sizeof(struct ifreq); the kernel reads and writes only it.
                fixed (byte* request = ifreq)
                {
                    rc = InteropCalls.Ioctl(fd, InteropCalls.TunSetIff, request);
                }
            }

            if (rc < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw errno is InteropCalls.EPerm or InteropCalls.EAccess
                    ? new UnauthorizedAccessException($"TUNSETIFF was refused (errno {errno}): creating a TAP interface needs CAP_NET_ADMIN.")
                    : Error("TUNSETIFF", errno);
            }

            int headerSize = VirtioNetHeader.Size;
            unsafe
            {
                // SAFETY: the kernel reads one int from a local that outlives the call.
                rc = InteropCalls.Ioctl(fd, InteropCalls.TunSetVnetHdrSz, &headerSize);
            }

            if (rc < 0)
            {
                throw Error("TUNSETVNETHDRSZ", Marshal.GetLastPInvokeError());
            }

            ReadOnlySpan<byte> nameBytes = ifreq[..InteropCalls.IfNameSize];
            int end = nameBytes.IndexOf((byte)0);
            string actual = Encoding.UTF8.GetString(end < 0 ? nameBytes : nameBytes[..end]);
            var backend = new TapNetBackend(handle, actual);

            // Until a driver says otherwise, the kernel must hand us complete frames.
            backend.SetReceiveOffloads(NetOffloads.None);
            return backend;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static IOException Error(string operation, int errno) =>
        new($"{operation} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}).");
}
