using System;
using System.Buffers.Binary;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// The one place a message's payload is read: each method checks the payload size and fd count the
/// request needs and the fields the message alone can settle, and returns the typed payload. A
/// message that breaks the protocol gets a <see cref="VhostUserProtocolException"/> with one reason.
/// What depends on the session (a ring index against the device, overlapping regions, a running
/// ring) is checked by the handler the payload goes to.
/// </summary>
internal static class VhostUserPayloadDecoder
{
    /// <summary>How many regions SET_MEM_TABLE may carry (VHOST_MEMORY_BASELINE_NREGIONS).</summary>
    public const int MemTableMaxRegions = 8;

    private const int MemTableHeaderSize = 8; // nregions u32, padding u32
    private const int SingleRegionPadding = 8;

    /// <summary>A request without payload or fds.</summary>
    public static void ReadEmpty(VhostUserMessage m) => Expect(m, 0, 0);

    /// <summary>A request without payload that carries one fd (SET_BACKEND_REQ_FD).</summary>
    public static void ReadEmptyWithFd(VhostUserMessage m) => Expect(m, 0, 1);

    /// <summary>A u64 payload without fds (SET_FEATURES, SET_PROTOCOL_FEATURES).</summary>
    public static ulong ReadUInt64(VhostUserMessage m)
    {
        Expect(m, sizeof(ulong), 0);
        return m.ReadUInt64(0);
    }

    /// <summary>SET_LOG_BASE with LOG_SHMFD: a log description and one fd (the values are checked against the fd when mapped).</summary>
    public static LogDescription ReadLogDescription(VhostUserMessage m)
    {
        Expect(m, LogDescription.Size, 1);
        return new LogDescription(m.ReadUInt64(0), m.ReadUInt64(8));
    }

    /// <summary>SET_VRING_NUM, SET/GET_VRING_BASE, SET_VRING_ENABLE.</summary>
    public static VringState ReadVringState(VhostUserMessage m)
    {
        Expect(m, VringState.Size, 0);
        return new VringState(m.ReadUInt32(0), m.ReadUInt32(4));
    }

    /// <summary>SET_VRING_ADDR; no flag but VHOST_VRING_F_LOG.</summary>
    public static VringAddress ReadVringAddress(VhostUserMessage m)
    {
        Expect(m, VringAddress.Size, 0);
        var address = new VringAddress(m.ReadUInt32(0), m.ReadUInt32(4), m.ReadUInt64(8), m.ReadUInt64(16), m.ReadUInt64(24), m.ReadUInt64(32));
        if ((address.Flags & ~VringAddress.FlagLog) != 0)
        {
            throw Error($"SET_VRING_ADDR: ring {address.Index} has unknown flags 0x{address.Flags:x}");
        }

        return address;
    }

    /// <summary>SET_VRING_KICK / CALL / ERR: a u64 with no unknown bits, and one fd unless it says "no fd".</summary>
    public static VringFile ReadVringFile(VhostUserMessage m)
    {
        if (m.Size != sizeof(ulong))
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected 8");
        }

        ulong value = m.ReadUInt64(0);
        if ((value & ~(VringFile.IndexMask | VringFile.NoFdFlag)) != 0)
        {
            throw Error($"{m.Request}: unknown bits in 0x{value:x}");
        }

        bool noFd = (value & VringFile.NoFdFlag) != 0;
        ExpectFds(m, noFd ? 0 : 1);
        return new VringFile((uint)(value & VringFile.IndexMask), noFd);
    }

    /// <summary>SET_MEM_TABLE: 1 to 8 regions, one fd each, each region well-formed on its own.</summary>
    public static MemoryRegionDescription[] ReadMemoryTable(VhostUserMessage m)
    {
        if (m.Size < MemTableHeaderSize)
        {
            throw Error($"SET_MEM_TABLE: payload of {m.Size} bytes, shorter than its 8-byte header");
        }

        uint count = m.ReadUInt32(0);
        if (count == 0)
        {
            throw Error("SET_MEM_TABLE with no regions: the front end shares no memory (QEMU needs a memory backend with share=on)");
        }

        if (count > MemTableMaxRegions)
        {
            throw Error($"SET_MEM_TABLE: {count} regions, at most {MemTableMaxRegions}");
        }

        Expect(m, MemTableHeaderSize + (MemoryRegionDescription.WireSize * (int)count), (int)count);
        var regions = new MemoryRegionDescription[count];
        for (int i = 0; i < regions.Length; i++)
        {
            regions[i] = ReadRegion(m, MemTableHeaderSize + (MemoryRegionDescription.WireSize * i), i);
        }

        return regions;
    }

    /// <summary>
    /// ADD_MEM_REG (one fd, a well-formed region) or REM_MEM_REG (QEMU may send the fd again or not;
    /// the region is only compared with the table's, so its fields are not checked here).
    /// </summary>
    public static MemoryRegionDescription ReadSingleMemoryRegion(VhostUserMessage m)
    {
        bool add = m.Request == VhostUserRequest.AddMemReg;
        Expect(m, SingleRegionPadding + MemoryRegionDescription.WireSize, add || m.FdCount is 1 ? 1 : 0);
        return add ? ReadRegion(m, SingleRegionPadding, 0) : RawRegion(m, SingleRegionPadding);
    }

    /// <summary>GET_CONFIG / SET_CONFIG: a header whose access fits the configuration space, then exactly that many bytes.</summary>
    public static ConfigSpaceAccess ReadConfigAccess(VhostUserMessage m, out ReadOnlySpan<byte> data)
    {
        ExpectFds(m, 0);
        if (m.Size < ConfigSpaceAccess.HeaderSize)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, shorter than the {ConfigSpaceAccess.HeaderSize}-byte config header");
        }

        uint offset = m.ReadUInt32(0);
        uint size = m.ReadUInt32(4);
        if (size > ConfigSpaceAccess.MaxConfigSize || offset > ConfigSpaceAccess.MaxConfigSize - size)
        {
            throw Error($"{m.Request}: offset {offset} size {size} is outside the {ConfigSpaceAccess.MaxConfigSize}-byte config space");
        }

        if (m.Size != ConfigSpaceAccess.HeaderSize + (int)size)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected {ConfigSpaceAccess.HeaderSize + size} for a {size}-byte access");
        }

        data = m.PayloadSpan.Slice(ConfigSpaceAccess.HeaderSize, (int)size);
        return new ConfigSpaceAccess((int)offset, (int)size, m.ReadUInt32(8));
    }

    /// <summary>
    /// GET_INFLIGHT_FD (no fd) / SET_INFLIGHT_FD (one fd): 1 to <paramref name="deviceQueues"/>
    /// queues of a power-of-two size.
    /// </summary>
    public static InFlightDescription ReadInFlightDescription(VhostUserMessage m, int deviceQueues)
    {
        if (m.Size is not (InFlightDescription.Size or InFlightDescription.Size - 4))
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected {InFlightDescription.Size}");
        }

        ExpectFds(m, m.Request == VhostUserRequest.SetInFlightFd ? 1 : 0);
        ReadOnlySpan<byte> payload = m.PayloadSpan;
        ushort queueCount = BinaryPrimitives.ReadUInt16LittleEndian(payload[16..]);
        ushort queueSize = BinaryPrimitives.ReadUInt16LittleEndian(payload[18..]);
        if (queueCount == 0 || queueCount > deviceQueues)
        {
            throw Error($"{m.Request}: {queueCount} queues, the device has {deviceQueues}");
        }

        if (queueSize == 0 || queueSize > SplitVirtqueue.MaxQueueSize || (queueSize & (queueSize - 1)) != 0)
        {
            throw Error($"{m.Request}: queue size {queueSize} is not a power of two up to {SplitVirtqueue.MaxQueueSize}");
        }

        return new InFlightDescription(m.ReadUInt64(0), m.ReadUInt64(8), queueCount, queueSize);
    }

    private static MemoryRegionDescription RawRegion(VhostUserMessage m, int offset) =>
        new(m.ReadUInt64(offset), m.ReadUInt64(offset + 8), m.ReadUInt64(offset + 16), m.ReadUInt64(offset + 24));

    /// <summary>A region to map: page-aligned, non-empty, not wrapping.</summary>
    private static MemoryRegionDescription ReadRegion(VhostUserMessage m, int offset, int index)
    {
        MemoryRegionDescription region = RawRegion(m, offset);
        ulong page = (ulong)Environment.SystemPageSize;
        if (region.Size == 0 || region.Size % page != 0 || region.GuestAddress % page != 0 || region.MmapOffset % page != 0)
        {
            throw Error($"{region.Describe(m.Request, index)}: size, guest address and offset must be non-zero page multiples");
        }

        if (region.GuestAddress + region.Size < region.GuestAddress || region.UserAddress + region.Size < region.UserAddress || region.MmapOffset + region.Size < region.MmapOffset)
        {
            throw Error($"{region.Describe(m.Request, index)}: wraps around the 64-bit address space");
        }

        return region;
    }

    private static void Expect(VhostUserMessage m, int payloadSize, int fds)
    {
        if (m.Size != payloadSize)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected {payloadSize}");
        }

        ExpectFds(m, fds);
    }

    private static void ExpectFds(VhostUserMessage m, int fds)
    {
        if (m.FdCount != fds)
        {
            throw Error($"{m.Request}: {m.FdCount} file descriptor(s), expected {fds}");
        }
    }

    private static VhostUserProtocolException Error(string reason) => new(reason);
}
