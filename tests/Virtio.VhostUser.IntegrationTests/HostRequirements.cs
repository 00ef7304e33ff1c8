using System;
using System.IO;
using System.Linq;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>Skips a test, with the reason, when this machine cannot boot the guest.</summary>
internal static class HostRequirements
{
    public static void RequireQemu()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "QEMU boot tests need Linux.");
        Assert.SkipUnless(Environment.IsPrivilegedProcess, "Needs root: the guest is built with apt-get and QEMU's vhost-user sockets, taps and namespaces are made here.");
        Assert.SkipUnless(OnPath("qemu-system-x86_64"), "qemu-system-x86_64 is not installed (eng/install-deps.sh installs qemu-system-x86).");
        Assert.SkipUnless(OnPath("apt-get") && OnPath("dpkg-deb"), "apt-get and dpkg-deb are needed to build the Debian guest.");
    }

    /// <summary>QEMU and the blk back end of <paramref name="kind"/>.</summary>
    public static void RequireBlk(BlkBackendKind kind)
    {
        RequireQemu();
        if (kind == BlkBackendKind.Ours)
        {
            RequireOurDaemon();
        }
        else
        {
            RequireQemuStorageDaemon();
        }
    }

    public static void RequireQemuStorageDaemon() =>
        Assert.SkipUnless(OnPath("qemu-storage-daemon"), "qemu-storage-daemon is not installed (Debian ships it in qemu-system-common).");

    public static void RequireTun()
    {
        Assert.SkipUnless(File.Exists("/dev/net/tun"), "/dev/net/tun is missing: no tap for the net tests.");
        Assert.SkipUnless(OnPath("ip"), "The ip tool (iproute2) is not installed.");
    }

    /// <summary>Our daemon: skipped while the sample does not exist in this checkout; once it does,
    /// the test project builds it, and a missing dll is a failure.</summary>
    public static void RequireOurDaemon()
    {
        Assert.SkipUnless(Directory.Exists(RepoPaths.DaemonProjectDir), $"{RepoPaths.DaemonProjectDir} does not exist in this checkout yet.");
        Assert.True(File.Exists(RepoPaths.DaemonDll), $"our daemon is not built: {RepoPaths.DaemonDll}");
    }

    public static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, tool)));
}
