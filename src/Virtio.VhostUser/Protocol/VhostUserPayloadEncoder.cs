using System;
using System.Buffers.Binary;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// The one place the front end writes a message's payload, the mirror of
/// <see cref="VhostUserPayloadDecoder"/>: each method writes the wire layout of one typed payload
/// into <c>destination</c> and returns the bytes written.
/// </summary>
internal static class VhostUserPayloadEncoder
{
    private const int MemTableHeaderSize = 8; // nregions u32, padding u32

    /// <summary>A u64 payload (SET_FEATURES, SET_PROTOCOL_FEATURES, a REPLY_ACK status).</summary>
    public static int WriteUInt64(Span<byte> destination, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, value);
        return sizeof(ulong);
    }

    /// <summary>SET_VRING_NUM, SET/GET_VRING_BASE, SET_VRING_ENABLE.</summary>
    public static int WriteVringState(Span<byte> destination, VringState state)
    {
        state.Write(destination);
        return VringState.Size;
    }

    /// <summary>SET_VRING_ADDR.</summary>
    public static int WriteVringAddress(Span<byte> destination, VringAddress address)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, address.Index);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], address.Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], address.DescriptorTable);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], address.UsedRing);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], address.AvailRing);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[32..], address.Log);
        return VringAddress.Size;
    }

    /// <summary>SET_VRING_KICK / CALL / ERR: the ring index, with the "no fd" bit when none is sent.</summary>
    public static int WriteVringFile(Span<byte> destination, VringFile file) =>
        WriteUInt64(destination, (file.Index & VringFile.IndexMask) | (file.NoFd ? VringFile.NoFdFlag : 0));

    /// <summary>SET_MEM_TABLE: the region count, padding, then each region (their fds go alongside, in order).</summary>
    public static int WriteMemoryTable(Span<byte> destination, ReadOnlySpan<MemoryRegionDescription> regions)
    {
        int size = MemTableHeaderSize + (MemoryRegionDescription.WireSize * regions.Length);
        destination[..size].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)regions.Length);
        for (int i = 0; i < regions.Length; i++)
        {
            Span<byte> region = destination[(MemTableHeaderSize + (MemoryRegionDescription.WireSize * i))..];
            BinaryPrimitives.WriteUInt64LittleEndian(region, regions[i].GuestAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(region[8..], regions[i].Size);
            BinaryPrimitives.WriteUInt64LittleEndian(region[16..], regions[i].UserAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(region[24..], regions[i].MmapOffset);
        }

        return size;
    }

    /// <summary>GET_CONFIG: the access header and <see cref="ConfigSpaceAccess.Size"/> zero bytes for the back end to fill.</summary>
    public static int WriteConfigRead(Span<byte> destination, ConfigSpaceAccess access)
    {
        int size = ConfigSpaceAccess.HeaderSize + access.Size;
        destination[..size].Clear();
        access.WriteHeader(destination);
        return size;
    }
}
