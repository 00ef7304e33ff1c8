using System;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Virtio.Bench.Soak;

/// <summary>One look at a process in /proc: open fds, resident memory, mappings; all -1 once it is gone.</summary>
/// <param name="Fds">Entries of /proc/PID/fd.</param>
/// <param name="RssKiB">VmRSS of /proc/PID/status.</param>
/// <param name="Maps">Lines of /proc/PID/maps (a mapping kept after its memory table is a leak too).</param>
internal readonly record struct ProcessResources(int Fds, long RssKiB, int Maps)
{
    public static readonly ProcessResources Gone = new(-1, -1, -1);

    public bool IsGone => Fds < 0;

    public static ProcessResources Read(int pid)
    {
        if (pid <= 0)
        {
            return Gone;
        }

        string proc = "/proc/" + pid.ToString(CultureInfo.InvariantCulture);
        try
        {
            int fds = Directory.EnumerateFileSystemEntries(proc + "/fd").Count();
            long rss = -1;
            foreach (string line in File.ReadLines(proc + "/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
                    break;
                }
            }

            int maps = File.ReadLines(proc + "/maps").Count();
            return new ProcessResources(fds, rss, maps);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Gone;
        }
    }
}
