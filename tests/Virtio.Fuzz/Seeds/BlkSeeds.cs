namespace Virtio.Fuzz.Seeds;

/// <summary>Seeds of the <c>blk</c> target (see <see cref="Targets.BlkTarget"/> for the format).</summary>
internal static class BlkSeeds
{
    private const int Writable = 0x8000;

    /// <summary>A 512-byte write at sector 2, then a read of it back.</summary>
    public static byte[] WriteRead() => new SeedWriter()
        .U8(0)
        .U8(2).U16(16).U16(512).U16(Writable | 1).U32(1).U32(0).U64(2).Pattern(512, 3)
        .U8(2).U16(16).U16(Writable | 512).U16(Writable | 1).U32(0).U32(0).U64(2)
        .ToArray();

    /// <summary>FLUSH and GET_ID, through indirect tables.</summary>
    public static byte[] FlushGetId() => new SeedWriter()
        .U8(0x40)
        .U8(1).U16(16).U16(Writable | 1).U32(4).U32(0).U64(0)
        .U8(2).U16(16).U16(Writable | 20).U16(Writable | 1).U32(8).U32(0).U64(0)
        .ToArray();

    /// <summary>DISCARD and WRITE_ZEROES of one segment each, the status byte in the last data buffer.</summary>
    public static byte[] DiscardWriteZeroes() => new SeedWriter()
        .U8(0)
        .U8(2).U16(16).U16(16).U16(Writable | 1).U32(11).U32(0).U64(0).U64(0).U32(8).U32(0)
        .U8(2).U16(16).U16(16).U16(Writable | 1).U32(13).U32(0).U64(0).U64(16).U32(4).U32(1)
        .ToArray();
}
