namespace Hosting;

/// <summary>The "Blk" configuration section: which disk to serve, where, with how many queues.</summary>
public sealed class BlkServiceOptions
{
    /// <summary>The disk image (a regular file or a block device); it must exist.</summary>
    public string Path { get; set; } = "disk.img";

    /// <summary>The vhost-user socket to listen on (created with mode 0600; an old socket file there is replaced).</summary>
    public string Socket { get; set; } = "vhost-blk.sock";

    /// <summary>Request queues; each gets its own I/O thread.</summary>
    public int Queues { get; set; } = 1;

    /// <summary>Open the image read-only.</summary>
    public bool ReadOnly { get; set; }
}
