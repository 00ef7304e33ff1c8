using System;
using System.Buffers.Binary;

namespace Virtio.Net;

/// <summary>
/// Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM) in software, for a guest that did not
/// negotiate VIRTIO_NET_F_GUEST_CSUM: the field at csum_start + csum_offset holds the pseudo-header
/// sum; the one's-complement sum from csum_start to the end, folded and inverted, replaces it.
/// </summary>
internal static class PartialChecksum
{
    public static bool TryComplete(Span<byte> frame, ushort start, ushort offset)
    {
        int field = start + offset;
        if (start >= frame.Length || field + 2 > frame.Length)
        {
            return false;
        }

        ulong sum = 0;
        ReadOnlySpan<byte> data = frame[start..];
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if (i < data.Length)
        {
            sum += (ulong)data[i] << 8;
        }

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        ushort result = (ushort)~sum;
        BinaryPrimitives.WriteUInt16BigEndian(frame[field..], result);
        return true;
    }
}
