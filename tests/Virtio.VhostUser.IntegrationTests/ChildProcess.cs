using System.Linq;
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// A process of the test (back end, QEMU, iperf3, a script): stdout and stderr go line by line to
/// a log file and to an in-memory list; an optional callback sees every line as it arrives. Every
/// command is run under coreutils' <c>timeout</c>, so nothing outlives its bound even if the test
/// host dies; Dispose kills what is still running.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = new();
    private readonly SemaphoreSlim _lineAdded = new(0);
    private readonly StreamWriter _log;
    private readonly Action<string>? _onLine;
    private readonly TaskCompletionSource _stdoutDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrDone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(Process process, string logPath, Action<string>? onLine)
    {
        _process = process;
        _log = new StreamWriter(logPath) { AutoFlush = true };
        _onLine = onLine;
        LogPath = logPath;
    }

    public string LogPath { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <paramref name="command"/> bounded by <paramref name="limit"/>.</summary>
    public static ChildProcess Start(IReadOnlyList<string> command, TimeSpan limit, string logPath,
        Action<string>? onLine = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("timeout")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-k");
        psi.ArgumentList.Add("5");
        psi.ArgumentList.Add(((int)Math.Ceiling(limit.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (string arg in command)
        {
            psi.ArgumentList.Add(arg);
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                psi.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var child = new ChildProcess(process, logPath, onLine);
        child._log.WriteLine("# " + string.Join(' ', command));
        process.OutputDataReceived += (_, e) => child.OnData(e.Data, child._stdoutDone);
        process.ErrorDataReceived += (_, e) => child.OnData(e.Data, child._stderrDone);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The lines so far.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return _lines.ToArray();
            }
        }
    }

    /// <summary>Waits, at most <paramref name="limit"/>, until a line containing <paramref name="text"/> has been written.</summary>
    public async Task<bool> WaitForLineAsync(string text, TimeSpan limit, CancellationToken cancellationToken)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (true)
        {
            if (Lines.Any(line => line.Contains(text, StringComparison.Ordinal)))
            {
                return true;
            }

            long remaining = deadline - Environment.TickCount64;
            if (remaining <= 0 || !await _lineAdded.WaitAsync(TimeSpan.FromMilliseconds(remaining), cancellationToken).ConfigureAwait(false))
            {
                return false;
            }
        }
    }

    /// <summary>Waits for the exit and the end of both streams; returns the exit status
    /// (124 = the timeout bound hit).</summary>
    public async Task<int> WaitAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(limit);
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            await Task.WhenAll(_stdoutDone.Task, _stderrDone.Task).WaitAsync(TimeSpan.FromSeconds(10), cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Kill();
            throw new TimeoutException($"process did not end within {limit.TotalSeconds:F0} s (log {LogPath})");
        }

        return _process.ExitCode;
    }

    /// <summary>SIGKILL to the whole tree (timeout and its child).</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Sends a signal to the command itself (the child of <c>timeout</c>).</summary>
    public void Signal(string signal)
    {
        string[] pids = Children(_process.Id);
        foreach (string pid in pids)
        {
            using var kill = Process.Start("kill", new[] { "-" + signal, pid });
            kill?.WaitForExit();
        }

        lock (_lines)
        {
            _log.WriteLine($"# host: SIG{signal} to [{string.Join(' ', pids)}] (children of timeout {_process.Id})");
        }
    }

    /// <summary>A line of the host's in the log file (not in <see cref="Lines"/>).</summary>
    public void Note(string text)
    {
        lock (_lines)
        {
            try
            {
                _log.WriteLine("# " + text);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>Processes whose parent is <paramref name="pid"/> (field 4 of /proc/N/stat).</summary>
    private static string[] Children(int pid)
    {
        var children = new List<string>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            string name = Path.GetFileName(dir);
            if (!int.TryParse(name, out _))
            {
                continue;
            }

            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
                string[] rest = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (rest.Length > 1 && rest[1] == pid.ToString(System.Globalization.CultureInfo.InvariantCulture))
                {
                    children.Add(name);
                }
            }
            catch (IOException)
            {
            }
        }

        return children.ToArray();
    }

    public void Dispose()
    {
        Kill();
        try
        {
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        lock (_lines)
        {
            _log.Dispose();
        }
    }

    private void OnData(string? line, TaskCompletionSource done)
    {
        if (line is null)
        {
            done.TrySetResult();
            return;
        }

        line = line.TrimEnd('\r');
        lock (_lines)
        {
            _lines.Add(line);
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
            }
        }

        _lineAdded.Release();
        _onLine?.Invoke(line);
    }
}
