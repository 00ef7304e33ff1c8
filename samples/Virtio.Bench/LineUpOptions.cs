namespace Virtio.Bench;

/// <summary>
/// What `compare` and `sweep` start: our daemon and qemu-storage-daemon on one image (or both null
/// disks), with the fairness knobs.
/// </summary>
/// <param name="DaemonDll">Virtio.VhostUserDaemon.dll.</param>
/// <param name="Image">The raw image the file exports serve (unused with <paramref name="NullDisk"/>).</param>
/// <param name="SizeBytes">The null disks' size.</param>
/// <param name="NullDisk">Our null disk against qemu-storage-daemon's null-co export instead of files.</param>
/// <param name="WithThreads">Also start the aio=threads export (compare does, sweep does not).</param>
/// <param name="OursKeys">Keys appended to our daemon's --blk spec, or null.</param>
/// <param name="QsdIoThreadPollMaxNs">Run the exports on an iothread with this poll-max-ns, or null for the main loop.</param>
internal sealed record LineUpOptions(string DaemonDll, string Image, long SizeBytes, bool NullDisk, bool WithThreads, string? OursKeys, int? QsdIoThreadPollMaxNs)
{
    /// <summary>Our daemon's --blk value: one queue on the image or the null disk, then <see cref="OursKeys"/>.</summary>
    public string OursSpec => (NullDisk ? $"null,size={SizeBytes}" : Image) + ",queues=1" + (string.IsNullOrEmpty(OursKeys) ? "" : "," + OursKeys);

    /// <summary>How qemu-storage-daemon runs the exports, for the table's heading.</summary>
    public string QsdLoop => QsdIoThreadPollMaxNs is int ns ? $"exports on an iothread (poll-max-ns={ns})" : "exports in its main loop (no polling)";
}
