using System;
using System.Globalization;
using Virtio.Samples;

namespace Virtio.VhostUserDaemon;

/// <summary>The value of --blk: <c>FILE|null[,readonly][,engine=io_uring|threads][,direct=on|off][,lock=on|off][,poll-us=N][,queues=N][,iothreads=N][,packed][,size=N]</c>.</summary>
/// <param name="Disk">The disk and its engine keys.</param>
/// <param name="Queues">Request queues offered (1..64, default 4).</param>
/// <param name="IoThreads">I/O threads the queues are spread over (queue i on thread i mod N); 0: min(queues, cores).</param>
/// <param name="Packed">Whether the disk offers the packed virtqueue (VIRTIO_F_RING_PACKED).</param>
internal sealed record BlkSpec(DiskKeys Disk, int Queues, int IoThreads, bool Packed)
{
    public const int DefaultQueues = 4;

    public const string Help =
        "Serve a virtio-blk disk: FILE[,KEY...] or null,size=N. FILE is a raw image or block device. Keys: " +
        DiskKeys.Help + "; queues=N (request queues, 1..64, default 4); iothreads=N (I/O threads, 1..64, default min(queues, cores); " +
        "queue i runs on thread i mod N, and with io_uring each thread has its own ring); packed (offer the packed virtqueue, VIRTIO_F_RING_PACKED: " +
        "a front end that takes it gets packed rings).";

    public static bool TryParse(string text, out BlkSpec? spec, out string? error)
    {
        spec = null;
        string[] parts = text.Split(',');
        var disk = new DiskKeys();
        if (!disk.TryTakeTarget(parts[0], out error))
        {
            error = "--blk: " + error;
            return false;
        }

        int queues = DefaultQueues;
        int ioThreads = 0;
        bool packed = false;
        for (int i = 1; i < parts.Length; i++)
        {
            string part = parts[i];
            if (disk.TryTake(part, out error))
            {
                if (error is not null)
                {
                    error = "--blk: " + error;
                    return false;
                }
            }
            else if (part == "packed")
            {
                packed = true;
            }
            else if (!TryCount(part, "queues=", ref queues) && !TryCount(part, "iothreads=", ref ioThreads))
            {
                error = $"--blk: unknown option '{part}' (expected readonly, engine=, direct=, lock=on|off, poll-us=, queues=1..64, iothreads=1..64, packed or size=)";
                return false;
            }
        }

        if (!disk.TryFinish(out error))
        {
            error = "--blk: " + error;
            return false;
        }

        spec = new BlkSpec(disk, queues, ioThreads, packed);
        return true;
    }

    private static bool TryCount(string part, string key, ref int value)
    {
        if (part.StartsWith(key, StringComparison.Ordinal)
            && int.TryParse(part.AsSpan(key.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 64)
        {
            value = n;
            return true;
        }

        return false;
    }
}
