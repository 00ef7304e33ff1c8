namespace Virtio.Bench;

/// <summary>The options `compare` and `sweep` share: what to start, for how long, how often.</summary>
/// <param name="Image">The raw image, or null for a new one in /dev/shm.</param>
/// <param name="SizeMiB">Size of the new image, and of the null disks.</param>
/// <param name="Seconds">Seconds per run.</param>
/// <param name="Rounds">Rounds (medians are over these).</param>
/// <param name="BlockSize">Bytes per request.</param>
/// <param name="DaemonDll">Our daemon's dll, or null for the default location.</param>
/// <param name="NullDisk">Null disks instead of the image.</param>
/// <param name="OursKeys">Keys appended to our daemon's --blk spec, or null.</param>
/// <param name="QsdIoThreadPollMaxNs">qemu-storage-daemon's exports on an iothread with this poll-max-ns, or null for its main loop.</param>
internal sealed record ComparisonSettings(string? Image, int SizeMiB, double Seconds, int Rounds, int BlockSize, string? DaemonDll, bool NullDisk, string? OursKeys, int? QsdIoThreadPollMaxNs);
