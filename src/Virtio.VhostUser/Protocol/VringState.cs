using System;
using System.Buffers.Binary;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// struct vhost_vring_state (vhost-user.rst, "Ring state description"): a ring index and one u32
/// value, the ring size (SET_VRING_NUM), base (SET/GET_VRING_BASE) or enable flag (SET_VRING_ENABLE).
/// </summary>
/// <param name="Index">The ring the message is about (not yet checked against the device).</param>
/// <param name="Num">The value.</param>
internal readonly record struct VringState(uint Index, uint Num)
{
    /// <summary>Bytes on the wire.</summary>
    public const int Size = 8;

    /// <summary>Writes the state as GET_VRING_BASE's reply.</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Index);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], Num);
    }
}
