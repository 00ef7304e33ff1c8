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
internal sealed class QemuGuest : IDisposable
{
    private readonly ChildProcess _process;

    private QemuGuest(ChildProcess process, IReadOnlyList<string> command)
    {
        _process = process;
        Command = command;
    }

    public IReadOnlyList<string> Command { get; }

    public string ConsoleLog => _process.LogPath;

    /// <summary>Boots the guest running <paramref name="test"/> (vtest=) with knobs (name=value kernel
    /// parameters) and devices (QEMU arguments).</summary>
    public static QemuGuest Start(string guestDir, string workDir, string name, string test, IEnumerable<string> knobs,
        IEnumerable<string> devices, TimeSpan limit, Action<string>? onLine = null, IReadOnlyList<string>? prefix = null)
    {
        string append = string.Join(' ', new[]
        {
            "console=ttyS0", "quiet",
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
            "-m", "512M", "-smp", "2", "-nographic", "-no-reboot",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", Path.Combine(guestDir, "vmlinuz"),
            "-initrd", Path.Combine(guestDir, "initrd.cpio.gz"),
            "-append", append,
        };
        command.AddRange(devices);
        var process = ChildProcess.Start(command, limit, Path.Combine(workDir, name + ".console.log"), onLine);
        return new QemuGuest(process, command);
    }

    /// <summary>Waits for QEMU to end (the guest powers off after its test).</summary>
    public async Task<GuestRun> WaitAsync(TimeSpan limit, CancellationToken cancellationToken)
    {
        int rc = await _process.WaitAsync(limit, cancellationToken).ConfigureAwait(false);
        return new GuestRun(_process.Lines, rc, ConsoleLog);
    }

    /// <summary>kill -9 of QEMU itself: the front end dies with requests in flight.</summary>
    public void KillFrontEnd() => _process.Signal("KILL");

    /// <summary>The console so far.</summary>
    public GuestRun Snapshot() => new(_process.Lines, null, ConsoleLog);

    public void Dispose() => _process.Dispose();

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
