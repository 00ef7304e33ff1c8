using System;
using System.Globalization;
using System.IO;

namespace Virtio.Core.Tests;

/// <summary>Reads what the tests check about this process from /proc.</summary>
internal static class ProcFs
{
    public static int OpenFdCount() => Directory.GetFileSystemEntries("/proc/self/fd").Length;

    /// <summary>The kernel thread id of the calling thread.</summary>
    public static int CurrentThreadId()
    {
        // /proc/thread-self links to "<pid>/task/<tid>".
        string target = new FileInfo("/proc/thread-self").LinkTarget!;
        return int.Parse(target.AsSpan(target.LastIndexOf('/') + 1), CultureInfo.InvariantCulture);
    }

    /// <summary>User plus system CPU time of one thread of this process.</summary>
    public static TimeSpan ThreadCpuTime(int tid)
    {
        string stat = File.ReadAllText($"/proc/self/task/{tid}/stat");

        // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        long ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture); // utime, stime: fields 14 and 15
        const int ClockTicksPerSecond = 100; // sysconf(_SC_CLK_TCK) on Linux
        return TimeSpan.FromSeconds((double)ticks / ClockTicksPerSecond);
    }
}
