using System;
using System.Diagnostics;
using System.IO;
using Xunit;

namespace Virtio.VhostUser.Tests.FrontEnd;

/// <summary>
/// A qemu-storage-daemon exporting a raw image as vhost-user-blk on a socket in a temporary
/// directory; killed on dispose. Missing qemu-storage-daemon fails the test (CI must not skip).
/// </summary>
internal sealed class QemuStorageDaemon : IDisposable
{
    private readonly Process _process;

    public QemuStorageDaemon(string image, string socketPath)
    {
        string? binary = FindOnPath("qemu-storage-daemon");
        Assert.True(binary is not null, "qemu-storage-daemon is not installed: install the Debian package qemu-system-common (apt-get install qemu-system-common).");
        var start = new ProcessStartInfo(binary!)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("--blockdev");
        start.ArgumentList.Add($"driver=file,node-name=f,filename={image},aio=threads");
        start.ArgumentList.Add("--export");
        start.ArgumentList.Add($"type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path={socketPath},writable=on");
        _process = Process.Start(start)!;
    }

    public int ProcessId => _process.Id;

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.WaitForExit(10_000);
        _process.Dispose();
    }

    private static string? FindOnPath(string name)
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
