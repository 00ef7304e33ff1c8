using System;
using System.Collections.Generic;
using System.Diagnostics;

namespace Virtio.Bench;

/// <summary>
/// The bench's child processes that are still running: each is killed (with its tree) on
/// <see cref="Release"/>, and all of them when the bench exits or is interrupted, so no back end,
/// guest or server outlives a run. Any thread.
/// </summary>
internal static class LiveChildren
{
    private static readonly List<Process> s_live = [];

    static LiveChildren()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
    }

    /// <summary>Watches <paramref name="process"/> from now on.</summary>
    public static void Add(Process process)
    {
        lock (s_live)
        {
            s_live.Add(process);
        }
    }

    /// <summary>Kills <paramref name="process"/> if it still runs and stops watching it.</summary>
    public static void Release(Process process)
    {
        Kill(process);
        lock (s_live)
        {
            s_live.Remove(process);
        }
    }

    /// <summary>Kills <paramref name="process"/> and its tree if it still runs (waits up to 5 s); one that never started or is gone is fine.</summary>
    public static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // never started, or already gone
        }
    }

    private static void KillAll()
    {
        lock (s_live)
        {
            foreach (Process process in s_live)
            {
                Kill(process);
            }
        }
    }
}
