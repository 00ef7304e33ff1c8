namespace Virtio.Fuzz.Seeds;

/// <summary>Seeds of the <c>mmio</c> target (see <see cref="Targets.MmioTarget"/> for the format).</summary>
internal static class MmioSeeds
{
    private const int Read4 = 0 | (2 << 2), Write4 = 1 | (2 << 2), Notify = 2, Store = 3;

    /// <summary>The probe a Linux driver makes, queue 0 at 0x4000/0x4400/0x5000 (size 64), a one-request chain, a notify.</summary>
    public static byte[] ProbeAndRead()
    {
        SeedWriter w = Probe(new SeedWriter());
        // A GET_ID request: header at 0x8000 (type 8), 20-byte id buffer at 0x9000, status at 0x9100.
        Descriptor(w, 0, 0x8000, 16, 1, 1);
        Descriptor(w, 1, 0x9000, 20, 3, 2);
        Descriptor(w, 2, 0x9100, 1, 2, 0);
        w.U8(Store).U16(0x8000).U64(8);
        w.U8(Store).U16(0x4400).U64(0x0000_0000_0001_0000); // avail: flags 0, idx 1, ring[0] = 0
        w.U8(Notify).U16(0);
        w.U8(Read4).U16(0x060);
        w.U8(Write4).U16(0x064).U64(1);
        return w.ToArray();
    }

    /// <summary>The probe, then queue 1 with a ring outside memory, a reset and the probe again.</summary>
    public static byte[] BadQueueThenReset()
    {
        SeedWriter w = Probe(new SeedWriter());
        w.U8(Write4).U16(0x030).U64(1).U8(Write4).U16(0x038).U64(64);
        w.U8(Write4).U16(0x080).U64(0xFFFF_0000).U8(Write4).U16(0x084).U64(0xFFFF);
        w.U8(Write4).U16(0x044).U64(1).U8(Read4).U16(0x044);
        w.U8(Write4).U16(0x070).U64(0);
        return Probe(w).ToArray();
    }

    /// <summary>Config space reads of every width, and a writeback toggle.</summary>
    public static byte[] Config() => new SeedWriter()
        .U8(0).U16(0x100).U8(1 << 2).U16(0x114).U8(Read4).U16(0x120).U8(3 << 2).U16(0x100)
        .U8(1).U16(0x120).U64(1).U8(Read4).U16(0x0fc)
        .ToArray();

    private static SeedWriter Probe(SeedWriter w)
    {
        w.U8(Read4).U16(0x000).U8(Read4).U16(0x004).U8(Read4).U16(0x008);
        w.U8(Write4).U16(0x070).U64(0).U8(Write4).U16(0x070).U64(1).U8(Write4).U16(0x070).U64(3);
        w.U8(Write4).U16(0x014).U64(0).U8(Read4).U16(0x010).U8(Write4).U16(0x014).U64(1).U8(Read4).U16(0x010);
        w.U8(Write4).U16(0x024).U64(0).U8(Write4).U16(0x020).U64(0x3000_0000).U8(Write4).U16(0x024).U64(1).U8(Write4).U16(0x020).U64(1);
        w.U8(Write4).U16(0x070).U64(0xB).U8(Read4).U16(0x070);
        w.U8(Write4).U16(0x030).U64(0).U8(Read4).U16(0x034).U8(Write4).U16(0x038).U64(64);
        w.U8(Write4).U16(0x080).U64(0x4000).U8(Write4).U16(0x090).U64(0x4400).U8(Write4).U16(0x0a0).U64(0x5000);
        w.U8(Write4).U16(0x044).U64(1);
        w.U8(Write4).U16(0x070).U64(0xF);
        return w;
    }

    private static void Descriptor(SeedWriter w, int index, ulong address, uint length, ushort flags, ushort next)
    {
        ushort at = (ushort)(0x4000 + (16 * index));
        w.U8(Store).U16(at).U64(address);
        w.U8(Store).U16(at + 8).U32(length).U16(flags).U16(next);
    }
}
