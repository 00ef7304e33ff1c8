using System;
using System.Buffers.Binary;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// The payload of GET_INFLIGHT_FD / SET_INFLIGHT_FD (vhost-user.rst, "Inflight description"): the
/// shared buffer's mmap size and offset, the number of queues and the queue size.
/// </summary>
/// <param name="MmapSize">Bytes of the buffer.</param>
/// <param name="MmapOffset">Where it starts in the fd.</param>
/// <param name="QueueCount">Queues in the buffer (checked: 1 up to the device's count).</param>
/// <param name="QueueSize">Entries per queue (checked: a power of two up to the largest ring).</param>
internal readonly record struct InFlightDescription(ulong MmapSize, ulong MmapOffset, ushort QueueCount, ushort QueueSize)
{
    /// <summary>Bytes on the wire (QEMU also sends 20, without the trailing padding).</summary>
    public const int Size = 24;

    /// <summary>Writes the description, padding zeroed (GET_INFLIGHT_FD's reply).</summary>
    public void Write(Span<byte> destination)
    {
        destination[..Size].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination, MmapSize);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], MmapOffset);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[16..], QueueCount);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[18..], QueueSize);
    }
}
