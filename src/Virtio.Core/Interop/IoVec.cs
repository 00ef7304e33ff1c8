using System.Runtime.InteropServices;

namespace Virtio.Core.Interop;

/// <summary>
/// struct iovec (readv/writev/preadv/pwritev, io_uring READV/WRITEV): a base address and a length.
/// The one I/O-vector layout of the library; device packages see it through InternalsVisibleTo.
/// </summary>
/// <remarks>A plain value: whoever fills an array of them keeps the memory they point to mapped until the kernel is done.</remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct IoVec
{
    /// <summary>The host address of the first byte.</summary>
    public nint Base;

    /// <summary>The length in bytes.</summary>
    public nuint Length;

    public IoVec(nint address, nuint length)
    {
        Base = address;
        Length = length;
    }
}
