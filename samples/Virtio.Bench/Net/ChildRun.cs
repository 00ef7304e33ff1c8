using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;

namespace Virtio.Bench.Net;

/// <summary>
/// A child of <c>net-compare</c> (QEMU, our daemon, the iperf3 server, ip): stdout and stderr go line
/// by line to a log file and to an optional callback. Started directly (no wrapper), so
/// <see cref="ProcessId"/> is the program's own pid for /proc/PID/stat (<c>ip netns exec</c> execs
/// its command in place). Killed on dispose, and when the bench exits or is interrupted.
/// </summary>
internal sealed class ChildRun : IDisposable
{
    private readonly Process _process;
    private readonly StreamWriter _log;
    private readonly Action<string>? _onLine;
    private readonly CountdownEvent _streamsOpen = new(2);
    private bool _logClosed;

    private ChildRun(IReadOnlyList<string> command, string logPath, Action<string>? onLine)
    {
        _log = new StreamWriter(logPath) { AutoFlush = true };
        _log.WriteLine("# " + string.Join(' ', command));
        _onLine = onLine;
        LogPath = logPath;
        var start = new ProcessStartInfo(command[0])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        for (int i = 1; i < command.Count; i++)
        {
            start.ArgumentList.Add(command[i]);
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        if (!_process.Start())
        {
            throw new IOException($"could not start {command[0]}");
        }

        LiveChildren.Add(_process);

        // QEMU's -nographic console reads stdin: give it end of file, as `< /dev/null` would.
        _process.StandardInput.Close();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string LogPath { get; }

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    public static ChildRun Start(IReadOnlyList<string> command, string logPath, Action<string>? onLine = null) =>
        new(command, logPath, onLine);

    /// <summary>Runs <paramref name="command"/> to its end (bounded by <paramref name="limit"/>) and returns its exit status.</summary>
    /// <exception cref="TimeoutException">It ran longer; it has been killed.</exception>
    public static int Run(IReadOnlyList<string> command, string logPath, TimeSpan limit)
    {
        using ChildRun child = Start(command, logPath);
        return child.WaitForExit(limit);
    }

    /// <summary>Waits for the exit and the end of its output; returns the exit status.</summary>
    /// <exception cref="TimeoutException">It still ran after <paramref name="limit"/>; it has been killed.</exception>
    public int WaitForExit(TimeSpan limit)
    {
        if (!_process.WaitForExit(limit))
        {
            LiveChildren.Kill(_process);
            throw new TimeoutException($"{_process.StartInfo.FileName} did not end within {limit.TotalSeconds:F0} s (log {LogPath})");
        }

        _streamsOpen.Wait(TimeSpan.FromSeconds(10));
        return _process.ExitCode;
    }

    public void Dispose()
    {
        LiveChildren.Release(_process);

        _streamsOpen.Wait(TimeSpan.FromSeconds(5));
        _process.Dispose();
        lock (_log)
        {
            _logClosed = true;
            _log.Dispose();
        }

        _streamsOpen.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            lock (_log)
            {
                if (!_logClosed)
                {
                    _streamsOpen.Signal();
                }
            }

            return;
        }

        lock (_log)
        {
            if (!_logClosed)
            {
                _log.WriteLine(line);
            }
        }

        _onLine?.Invoke(line);
    }
}
