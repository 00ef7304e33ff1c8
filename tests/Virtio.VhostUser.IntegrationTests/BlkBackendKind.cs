namespace Virtio.VhostUser.IntegrationTests;

/// <summary>Which vhost-user-blk back end a test boots the guest against.</summary>
public enum BlkBackendKind
{
    /// <summary>samples/Virtio.VhostUserDaemon: the back end under test.</summary>
    Ours,

    /// <summary>qemu-storage-daemon's vhost-user-blk export: the reference that proves the harness.</summary>
    QemuStorageDaemon,
}
