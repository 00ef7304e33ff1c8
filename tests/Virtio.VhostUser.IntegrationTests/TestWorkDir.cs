using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>A directory per test for sockets, images and console logs
/// (/tmp/virtio-vhost-it/NAME-TIME); logs stay for a look after a failure, images are removed.</summary>
internal static class TestWorkDir
{
    public static string Create(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "virtio-vhost-it",
            $"{name}-{DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>A sparse raw image of <paramref name="mebibytes"/> MiB.</summary>
    public static string CreateRawImage(string dir, int mebibytes)
    {
        string path = Path.Combine(dir, "disk.img");
        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write))
        {
            file.SetLength(mebibytes * 1024L * 1024L);
        }

        return path;
    }

    public static void DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException e)
        {
            Debug.WriteLine(e);
        }
    }
}
