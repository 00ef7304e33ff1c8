using System;
using System.IO;

namespace Virtio.Bench;

/// <summary>Where our daemon's build output is, by default: next to this bench's.</summary>
internal static class DaemonDll
{
    /// <summary>samples/Virtio.VhostUserDaemon/bin/CONFIG/TFM/ next to samples/Virtio.Bench/bin/CONFIG/TFM/.</summary>
    public static string Default()
    {
        var ours = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = ours.Name;
        string configuration = ours.Parent!.Name;
        string samples = ours.Parent.Parent!.Parent!.Parent!.FullName;
        return Path.Combine(samples, "Virtio.VhostUserDaemon", "bin", configuration, tfm, "Virtio.VhostUserDaemon.dll");
    }
}
