namespace Virtio.Bench.Net;

/// <summary>Which virtio-net back end a boot of <c>net-compare</c> uses.</summary>
internal enum NetBackEnd
{
    /// <summary>vhost-user-net: QEMU's <c>-netdev vhost-user</c> to our daemon, which holds the tap.</summary>
    Ours,

    /// <summary>QEMU's own <c>-netdev tap</c> (its in-process virtio-net back end; no vhost-net here).</summary>
    QemuTap,
}
