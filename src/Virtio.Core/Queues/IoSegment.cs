using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Virtio.Core.Queues;

/// <summary>
/// One guest buffer, or part of one, as a host address and a length: what an iovec is built from
/// for zero-copy I/O. Made from spans over guest memory (a host mapping, which does not move), so
/// the address stays valid for as long as the memory is mapped, i.e. while the device runs.
/// </summary>
/// <remarks>A plain value; any thread may use it while the request it came from is in flight.</remarks>
public readonly record struct IoSegment
{
    /// <summary>Creates a segment. For code that already holds host addresses of guest memory.</summary>
    /// <param name="address">The host virtual address of the first byte.</param>
    /// <param name="length">The length in bytes; not negative.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public IoSegment(nint address, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Address = address;
        Length = length;
    }

    /// <summary>The host virtual address of the first byte.</summary>
    public nint Address { get; }

    /// <summary>The length in bytes.</summary>
    public int Length { get; }

    /// <summary>
    /// The segment of a span over guest memory. Only for spans from <see cref="Memory.IGuestMemory"/>
    /// (unmanaged mappings): a span over a managed array would move under the address.
    /// </summary>
    /// <param name="span">A span over guest memory.</param>
    /// <returns>The span's address and length.</returns>
    public static IoSegment FromSpan(Span<byte> span)
    {
        nint address;
        unsafe
        {
            // SAFETY: only the address is taken, nothing is dereferenced; the caller's span is over
            // an unmanaged guest-memory mapping, so the address does not move while it stays mapped.
            address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(span));
        }

        return new IoSegment(address, span.Length);
    }

    /// <summary>The segment's bytes. Valid while the guest memory stays mapped.</summary>
    /// <returns>A span over the segment.</returns>
    public Span<byte> AsSpan()
    {
        unsafe
        {
            // SAFETY: a segment is made from a span over guest memory (FromSpan, or a host address the
            // caller vouches for), so these Length bytes are mapped while the device runs.
            return new Span<byte>((void*)Address, Length);
        }
    }

    /// <summary>The part of the segment from <paramref name="start"/> for <paramref name="length"/> bytes.</summary>
    /// <param name="start">Bytes to drop from the front.</param>
    /// <param name="length">Bytes to keep.</param>
    /// <returns>The sub-segment.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the segment.</exception>
    public IoSegment Slice(int start, int length)
    {
        if ((uint)start > (uint)Length || (uint)length > (uint)(Length - start))
        {
            throw new ArgumentOutOfRangeException(nameof(start), "The range is not inside the segment.");
        }

        return new IoSegment(Address + start, length);
    }
}
