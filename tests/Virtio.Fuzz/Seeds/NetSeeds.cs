namespace Virtio.Fuzz.Seeds;

/// <summary>Seeds of the <c>net-tx</c> and <c>net-ctrl</c> targets (see <see cref="Targets.NetTarget"/> for the format).</summary>
internal static class NetSeeds
{
    private const int Writable = 0x8000;

    /// <summary>A plain 60-byte frame, header and frame in separate buffers, as Linux sends it.</summary>
    public static byte[] PlainFrame() => new SeedWriter()
        .U16(0).U8(0)
        .U8(1).U16(12).U16(60).Bytes(Header(flags: 0, gso: 0, headerLength: 0, gsoSize: 0, csumStart: 0, csumOffset: 0)).Pattern(60, 1)
        .ToArray();

    /// <summary>A TCPv4 GSO frame with a partial checksum, header and frame in one buffer, on the second pair, then a bad checksum offset.</summary>
    public static byte[] GsoFrames() => new SeedWriter()
        .U16(0).U8(1)
        .U8(0).U16(12 + 1514).Bytes(Header(flags: 1, gso: 1, headerLength: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16)).Pattern(1514, 2)
        .U8(1).U16(12).U16(100).Bytes(Header(flags: 1, gso: 0, headerLength: 0, gsoSize: 0, csumStart: 90, csumOffset: 16)).Pattern(100, 3)
        .ToArray();

    /// <summary>MAC_ADDR_SET, RX_PROMISC and VQ_PAIRS_SET, each with its ack byte.</summary>
    public static byte[] ControlCommands() => new SeedWriter()
        .U16(0).U8(0)
        .U8(2).U16(2).U16(6).U16(Writable | 1).U8(1).U8(1).Bytes([0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF])
        .U8(1).U16(3).U16(Writable | 1).U8(0).U8(0).U8(1)
        .U8(1).U16(4).U16(Writable | 1).U8(4).U8(0).U16(2)
        .ToArray();

    /// <summary>MAC_TABLE_SET with one unicast and no multicast entry.</summary>
    public static byte[] MacTable() => new SeedWriter()
        .U16(0).U8(0)
        .U8(1).U16(2 + 4 + 6 + 4).U16(Writable | 1).U8(1).U8(0).U32(1).Bytes([0x52, 0x54, 0x00, 0x01, 0x02, 0x03]).U32(0)
        .ToArray();

    /// <summary>Net-rx: a 60-byte and a 1514-byte frame from the peer, four one-buffer receive chains of 2 KiB (as Linux posts with MRG_RXBUF).</summary>
    public static byte[] ReceiveMergeable()
    {
        SeedWriter w = new SeedWriter().U16(0).U8(0).U8(2);
        w.U16(60).Bytes(Header(flags: 0, gso: 0, headerLength: 0, gsoSize: 0, csumStart: 0, csumOffset: 0)).Pattern(60, 4);
        w.U16(1514).Bytes(Header(flags: 1, gso: 0, headerLength: 0, gsoSize: 0, csumStart: 34, csumOffset: 16)).Pattern(1514, 5);
        for (int i = 0; i < 4; i++)
        {
            w.U8(0).U16(Writable | 2048);
        }

        return w.ToArray();
    }

    /// <summary>Net-rx without MRG_RXBUF and GUEST_CSUM (bits 9, 10): a frame with a partial checksum the device completes, into a chain of a header buffer and a data buffer.</summary>
    public static byte[] ReceiveBigBuffers() => new SeedWriter()
        .U16((1 << 9) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 1) | (1 << 2)).U8(0).U8(1)
        .U16(100).Bytes(Header(flags: 1, gso: 0, headerLength: 0, gsoSize: 0, csumStart: 34, csumOffset: 6)).Pattern(100, 6)
        .U8(1).U16(Writable | 12).U16(Writable | 2048)
        .ToArray();

    private static byte[] Header(byte flags, byte gso, ushort headerLength, ushort gsoSize, ushort csumStart, ushort csumOffset) => new SeedWriter()
        .U8(flags).U8(gso).U16(headerLength).U16(gsoSize).U16(csumStart).U16(csumOffset).U16(0)
        .ToArray();
}
