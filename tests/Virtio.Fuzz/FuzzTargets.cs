using System;
using Virtio.Fuzz.Targets;

namespace Virtio.Fuzz;

/// <summary>The targets by name: what <c>--list</c> prints and what eng/fuzz.sh runs.</summary>
internal static class FuzzTargets
{
    /// <summary>Every target's name, in the order eng/fuzz.sh runs them.</summary>
    public static readonly string[] Names = ["ring", "blk", "net-tx", "net-ctrl", "net-rx", "vhost-user", "mmio"];

    /// <summary>Creates the target named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No target has that name.</exception>
    public static IFuzzTarget Create(string name) => name switch
    {
        "ring" => new RingTarget(),
        "blk" => new BlkTarget(),
        "net-tx" => new NetTarget(NetFuzzMode.Transmit),
        "net-ctrl" => new NetTarget(NetFuzzMode.Control),
        "net-rx" => new NetTarget(NetFuzzMode.Receive),
        "vhost-user" => new VhostUserTarget(),
        "mmio" => new MmioTarget(),
        _ => throw new ArgumentException($"no fuzz target '{name}' (targets: {string.Join(", ", Names)})", nameof(name)),
    };
}
