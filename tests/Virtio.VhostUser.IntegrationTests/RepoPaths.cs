using System;
using System.IO;
using System.Linq;
using System.Reflection;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>Where the scripts and our daemon are, as recorded at build time.</summary>
internal static class RepoPaths
{
    public static string RepoRoot { get; } = Metadata("RepoRoot");

    public static string LinuxGuestDir => Path.Combine(RepoRoot, "samples", "linux-guest");

    public static string DaemonProjectDir => Path.Combine(RepoRoot, "samples", "Virtio.VhostUserDaemon");

    /// <summary>Our daemon's dll; VIRTIO_VHOST_DAEMON overrides it.</summary>
    public static string DaemonDll =>
        Environment.GetEnvironmentVariable("VIRTIO_VHOST_DAEMON") is { Length: > 0 } path ? path : Metadata("DaemonDll");

    /// <summary>samples/Hosting's dll (a BackgroundService serving one blk device).</summary>
    public static string HostingDll => Metadata("HostingDll");

    private static string Metadata(string key) =>
        typeof(RepoPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == key).Value ?? throw new InvalidOperationException($"no {key} metadata");
}
