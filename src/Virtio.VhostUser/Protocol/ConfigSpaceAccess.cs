using System;
using System.Buffers.Binary;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// The header of GET_CONFIG / SET_CONFIG (vhost-user.rst, "Device configuration space"): offset,
/// size and flags, each a u32, followed by <see cref="Size"/> bytes of configuration data.
/// </summary>
/// <param name="Offset">Byte offset into the device configuration (checked to fit with the size).</param>
/// <param name="Size">Bytes accessed.</param>
/// <param name="Flags">VHOST_SET_CONFIG_TYPE_*, passed back unchanged.</param>
internal readonly record struct ConfigSpaceAccess(int Offset, int Size, uint Flags)
{
    /// <summary>Bytes of the header.</summary>
    public const int HeaderSize = 12;

    /// <summary>The largest configuration space accessible.</summary>
    public const int MaxConfigSize = 256;

    /// <summary>Writes the header (as GET_CONFIG's reply echoes it).</summary>
    public void WriteHeader(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], (uint)Size);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], Flags);
    }
}
