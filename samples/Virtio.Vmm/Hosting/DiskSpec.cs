using System;
using System.Globalization;
using Virtio.Samples;

namespace Virtio.Vmm.Hosting;

/// <summary>One <c>--disk path|null[,readonly][,engine=io_uring|threads][,direct=on|off][,queues=N][,serial=ID][,size=N]</c>.</summary>
/// <param name="Disk">The file (or null disk) and its engine keys; <c>readonly</c> also offers VIRTIO_BLK_F_RO.</param>
/// <param name="Queues">The number of request queues.</param>
/// <param name="Serial">The serial number (GET_ID), at most 20 bytes.</param>
internal sealed record DiskSpec(DiskKeys Disk, int Queues, string Serial)
{
    public const string Help = DiskKeys.Help + "; queues=1..16 (default 1, all on the disk's one I/O thread); serial=ID (GET_ID, at most 20 characters)";

    /// <summary>A read-write file with the default engine.</summary>
    public static DiskSpec ForFile(string path, int queues, string serial)
    {
        var disk = new DiskKeys();
        disk.TryTakeTarget(path, out _);
        return new DiskSpec(disk, queues, serial);
    }

    /// <summary>Parses the option's value; returns null and a message when it is malformed.</summary>
    public static DiskSpec? TryParse(string text, out string? error)
    {
        string[] parts = text.Split(',');
        var disk = new DiskKeys();
        if (!disk.TryTakeTarget(parts[0], out error))
        {
            error = $"--disk '{text}': {error}";
            return null;
        }

        int queues = 1;
        string serial = string.Empty;
        foreach (string part in parts.AsSpan(1))
        {
            if (disk.TryTake(part, out error))
            {
                if (error is not null)
                {
                    error = $"--disk '{text}': {error}";
                    return null;
                }
            }
            else if (part.StartsWith("queues=", StringComparison.Ordinal)
                && int.TryParse(part.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 16)
            {
                queues = n;
            }
            else if (part.StartsWith("serial=", StringComparison.Ordinal) && part.Length - 7 <= 20)
            {
                serial = part[7..];
            }
            else
            {
                error = $"--disk '{text}': '{part}' is not readonly, engine=, direct=, lock=, poll-us=, size=, queues=1..16 or serial=ID (at most 20 characters)";
                return null;
            }
        }

        if (!disk.TryFinish(out error))
        {
            error = $"--disk '{text}': {error}";
            return null;
        }

        return new DiskSpec(disk, queues, serial);
    }
}
