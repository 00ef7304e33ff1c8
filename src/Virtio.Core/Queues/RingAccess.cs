using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;

namespace Virtio.Core.Queues;

/// <summary>
/// Little-endian access to ring fields shared with the driver. Index fields use acquire loads
/// and release stores; callers say in a comment which virtio rule each ordering implements.
/// Spans passed here are at least as long as the field and, for the ordered accesses, aligned
/// (the ring addresses are checked at activation: avail 2, used 4, descriptors 16).
/// </summary>
internal static class RingAccess
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ReadUInt16Acquire(Span<byte> field)
    {
        ushort raw = Volatile.Read(ref Unsafe.As<byte, ushort>(ref MemoryMarshal.GetReference(field)));
        return BitConverter.IsLittleEndian ? raw : BinaryPrimitives.ReverseEndianness(raw);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteUInt16Release(Span<byte> field, ushort value)
    {
        ushort raw = BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);
        Volatile.Write(ref Unsafe.As<byte, ushort>(ref MemoryMarshal.GetReference(field)), raw);
    }
}
