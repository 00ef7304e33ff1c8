using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Runtime.InteropServices;

namespace Virtio.Core.Interop;

/// <summary>Turns a failed system call into an exception, outside the hot code that made the call.</summary>
internal static class NativeError
{
    [DoesNotReturn]
    public static void ThrowIOException(string operation, int errno) =>
        throw CreateIOException(operation, errno);

    public static IOException CreateIOException(string operation, int errno) =>
        new($"{operation} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)}).");
}
