using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// One boot of the validation guest: qemu-system-x86_64 -M microvm under TCG with shared memfd
/// guest memory, the kernel and initramfs of <see cref="GuestImage"/>, and the devices given,
/// as samples/linux-guest/run-blk.sh and run-net.sh run it. The guest's console (stdout) is
/// parsed as it arrives.
/// </summary>
/// <remarks>
/// A boot whose kernel printed lines but did not reach the init script (VTEST-INIT) within
/// <see cref="BootLimit"/> (or the one given to <see cref="Start"/>) is killed and booted again, once: the kernel hung before init, so before
/// any virtio driver was loaded (virtio, virtio_mmio and virtio_blk are modules the init script
/// loads; VTEST-MODULES lists them) and the device under test had only answered QEMU's setup. A boot
/// that printed nothing is not retried: QEMU never ran the guest, which is what a back end that does
/// not answer QEMU's setup messages looks like, so that fails the test.
/// </remarks>
internal sealed class QemuGuest : IDisposable
{
    /// <summary>Boots reach VTEST-INIT in 4 to 7 s here, under load too (CI's parallel test projects).</summary>
    internal static readonly TimeSpan BootLimit = TimeSpan.FromSeconds(60);

    private readonly IReadOnlyList<string> _command;
    private readonly TimeSpan _limit;
    private readonly string _logPath;
    private readonly Action<string>? _onLine;
    private readonly CancellationTokenSource _disposed = new();
    private readonly Lock _gate = new();
    private readonly Task _watchdog;
    private ChildProcess _process;
    private TaskCompletionSource? _rebooting;
    private ChildProcess? _hung;

    private readonly TimeSpan _bootLimit;

    private QemuGuest(IReadOnlyList<string> command, TimeSpan limit, string logPath, Action<string>? onLine, TimeSpan bootLimit)
    {
        _bootLimit = bootLimit;
        _command = command;
        _limit = limit;
        _logPath = logPath;
        _onLine = onLine;
        _process = ChildProcess.Start(command, limit, logPath, onLine);
        _watchdog = Task.Run(WatchBootAsync);
    }

    public IReadOnlyList<string> Command => _command;

    public string ConsoleLog => Current.LogPath;

    /// <summary>How many times the guest was booted (2 after a boot that hung before init).</summary>
    public int Boots { get; private set; } = 1;

    private ChildProcess Current
    {
        get
        {
            lock (_gate)
            {
                return _process;
            }
        }
    }

    /// <summary>Boots the guest running <paramref name="test"/> (vtest=) with knobs (name=value kernel
    /// parameters) and devices (QEMU arguments). A <paramref name="bootLimit"/> of
    /// <see cref="Timeout.InfiniteTimeSpan"/> never boots again: for a QEMU started with <c>-incoming</c>,
    /// which runs a guest migrated to it.</summary>
    public static QemuGuest Start(string guestDir, string workDir, string name, string test, IEnumerable<string> knobs,
        IEnumerable<string> devices, TimeSpan limit, Action<string>? onLine = null, IReadOnlyList<string>? prefix = null, TimeSpan? bootLimit = null, bool reboot = false)
    {
        string append = string.Join(' ', new[]
        {
            // No "quiet": the kernel's lines show that the guest ran, and where a boot hung.
            "console=ttyS0",
            // run-blk.sh explains both: PIT calibration hangs under load; qemu64 TSCs are otherwise
            // called unsynchronized and the clock falls back to jiffies.
            $"tsc_early_khz={TscKhz()}", "tsc=reliable",
            "vtest=" + test,
        }.Concat(knobs));
        var command = new List<string>(prefix ?? Array.Empty<string>())
        {
            "qemu-system-x86_64",
            "-M", "microvm,accel=tcg,acpi=on,memory-backend=mem",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-m", "512M", "-smp", "2", "-nographic",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", Path.Combine(guestDir, "vmlinuz"),
            "-initrd", Path.Combine(guestDir, "initrd.cpio.gz"),
            "-append", append,
        };
        if (!reboot)
        {
            command.Add("-no-reboot");
        }

        command.AddRange(devices);
        return new QemuGuest(command, limit, Path.Combine(workDir, name + ".console.log"), onLine, bootLimit ?? BootLimit);
    }

    /// <summary>Waits for QEMU to end (the guest powers off after its test); a boot that hung before
    /// init and was booted again is waited past.</summary>
    public async Task<GuestRun> WaitAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (true)
        {
            ChildProcess process = Current;
            int rc = await process.WaitAsync(TimeSpan.FromMilliseconds(Math.Max(1, deadline - Environment.TickCount64)), cancellationToken).ConfigureAwait(false);
            Task? rebooted;
            lock (_gate)
            {
                rebooted = ReferenceEquals(process, _process) ? _rebooting?.Task : Task.CompletedTask;
            }

            if (rebooted is null)
            {
                return new GuestRun(process.Lines, rc, process.LogPath);
            }

            await rebooted.WaitAsync(cancellationToken).ConfigureAwait(false);
            // The new boot gets the time of a whole boot (the one that hung used up part of it), and
            // at least its own bound with timeout's grace for the kill.
            long whole = (long)Math.Max(limit.TotalMilliseconds, (_limit + TimeSpan.FromSeconds(10)).TotalMilliseconds);
            deadline = Math.Max(deadline, Environment.TickCount64 + whole);
        }
    }

    /// <summary>kill -9 of QEMU itself: the front end dies with requests in flight.</summary>
    public void KillFrontEnd() => Current.Signal("KILL");

    /// <summary>The console so far.</summary>
    public GuestRun Snapshot()
    {
        ChildProcess process = Current;
        return new(process.Lines, null, process.LogPath);
    }

    public void Dispose()
    {
        _disposed.Cancel();
        try
        {
            _watchdog.Wait(TimeSpan.FromSeconds(15));
        }
        catch (AggregateException)
        {
        }

        Current.Dispose();
        _hung?.Dispose();
        _disposed.Dispose();
    }

    /// <summary>A kernel message on the console: "[    0.507808] ...".</summary>
    private static bool IsKernelLine(string line) =>
        line.Length > 2 && line[0] == '[' && line.IndexOf(']', StringComparison.Ordinal) is int end and > 1
        && double.TryParse(line.AsSpan(1, end - 1), NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    /// <summary>Boots once more when the kernel printed lines but hung before init (see the remarks).</summary>
    private async Task WatchBootAsync()
    {
        ChildProcess first = Current;
        if (_bootLimit == Timeout.InfiniteTimeSpan)
        {
            return; // a migration's destination: its guest booted elsewhere and prints no VTEST-INIT here
        }

        try
        {
            if (await first.WaitForLineAsync("VTEST-INIT", _bootLimit, _disposed.Token).ConfigureAwait(false)
                || first.HasExited || !first.Lines.Any(IsKernelLine))
            {
                return;
            }
        }
        catch (OperationCanceledException)
        {
            return;
        }

        var rebooting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _rebooting = rebooting;
        }

        string lastLine = first.Lines[^1];
        first.Note($"host: the kernel did not reach init in {_bootLimit.TotalSeconds:F0} s (last line: {lastLine}); killed, booting again");
        // Killed, not disposed: WaitAsync may be waiting on it; Dispose disposes it.
        first.Kill();
        string retryLog = Path.ChangeExtension(_logPath, null) + ".boot2.log";
        ChildProcess second = ChildProcess.Start(_command, _limit, retryLog, _onLine);
        second.Note($"host: second boot; the first hung before init ({_logPath})");
        lock (_gate)
        {
            _hung = first;
            _process = second;
            _rebooting = null;
            Boots = 2;
        }

        rebooting.SetResult();
    }

    private static long TscKhz()
    {
        foreach (string line in File.ReadLines("/proc/cpuinfo"))
        {
            if (line.StartsWith("cpu MHz", StringComparison.Ordinal))
            {
                return (long)(double.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture) * 1000);
            }
        }

        return 0;
    }
}
