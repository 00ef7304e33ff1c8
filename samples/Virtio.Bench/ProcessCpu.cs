using System;
using System.Globalization;
using System.IO;

namespace Virtio.Bench;

/// <summary>A process's user+system CPU time from /proc/PID/stat (read before and after a run, never in it).</summary>
internal static class ProcessCpu
{
    /// <summary>/proc reports in USER_HZ, which the Linux ABI fixes at 100.</summary>
    private const double TicksPerSecond = 100;

    /// <summary>utime+stime of <paramref name="pid"/> in seconds, or NaN if it cannot be read.</summary>
    public static double Seconds(int? pid)
    {
        if (pid is not int id || id <= 0)
        {
            return double.NaN;
        }

        try
        {
            string stat = File.ReadAllText($"/proc/{id}/stat");
            // Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            long stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (utime + stime) / TicksPerSecond;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }
}
