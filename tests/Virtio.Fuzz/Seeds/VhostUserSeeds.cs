namespace Virtio.Fuzz.Seeds;

/// <summary>Seeds of the <c>vhost-user</c> target (see <see cref="Targets.VhostUserTarget"/> for the format).</summary>
internal static class VhostUserSeeds
{
    private const uint Version = 1, NeedReply = 8;

    /// <summary>The feature handshake: GET/SET_FEATURES, GET/SET_PROTOCOL_FEATURES, SET_OWNER, GET_QUEUE_NUM.</summary>
    public static byte[] Handshake() => new SeedWriter()
        .U8(0)
        .U32(1).U32(Version).U32(0)
        .U32(2).U32(Version).U32(8).U64((1UL << 32) | (1UL << 30))
        .U32(15).U32(Version).U32(0)
        .U32(16).U32(Version | NeedReply).U32(8).U64(0x8209)
        .U32(3).U32(Version).U32(0)
        .U32(17).U32(Version).U32(0)
        .ToArray();

    /// <summary>SET_MEM_TABLE of one 1 MiB region, with its fd.</summary>
    public static byte[] MemTable() => new SeedWriter()
        .U8(1)
        .U32(5).U32(Version).U32(8 + 32).U32(1).U32(0).U64(0).U64(1 << 20).U64(0x7f0000000000).U64(0)
        .ToArray();

    /// <summary>A ring's set-up without fds: SET_VRING_NUM/ADDR/BASE, SET_VRING_CALL "no fd", GET_CONFIG, GET_INFLIGHT_FD, SET_VRING_ENABLE.</summary>
    public static byte[] VringSetup() => new SeedWriter()
        .U8(0x10)
        .U32(8).U32(Version).U32(8).U32(0).U32(256)
        .U32(9).U32(Version).U32(40).U32(0).U32(0).U64(0x10000).U64(0x12000).U64(0x11000).U64(0)
        .U32(10).U32(Version).U32(8).U32(0).U32(0)
        .U32(13).U32(Version).U32(8).U64(0x100)
        .U32(24).U32(Version).U32(12 + 8).U32(0).U32(8).U32(0).U64(0)
        .U32(31).U32(Version).U32(24).U64(0).U64(0).U16(2).U16(256).U32(0)
        .U32(18).U32(Version).U32(8).U32(0).U32(1)
        .ToArray();

    /// <summary>SET_VRING_KICK and ADD_MEM_REG, one fd each.</summary>
    public static byte[] WithFds() => new SeedWriter()
        .U8(1)
        .U32(12).U32(Version).U32(8).U64(0)
        .U32(37).U32(Version).U32(8 + 32).U64(0).U64(1 << 20).U64(1 << 20).U64(0x7f0000100000).U64(0)
        .ToArray();
}
