using System;
using System.IO;

namespace Virtio.Bench;

/// <summary>
/// A comparison's scratch: a temporary directory for the sockets and, unless the caller gives one,
/// an image of non-zero data in /dev/shm. Both are removed on dispose.
/// </summary>
internal sealed class Workspace : IDisposable
{
    private readonly bool _ownImage;

    private Workspace(string directory, string image, bool ownImage)
    {
        Directory = directory;
        Image = image;
        _ownImage = ownImage;
    }

    public string Directory { get; }

    public string Image { get; }

    /// <summary>How the image is described in the table's heading.</summary>
    public string ImageDescription(int sizeMiB) => _ownImage ? $"{sizeMiB} MiB in /dev/shm" : Image;

    /// <summary>Makes the directory, and a <paramref name="sizeMiB"/> MiB image when <paramref name="image"/> is null and <paramref name="needImage"/>.</summary>
    public static Workspace Create(string? image, int sizeMiB, bool needImage)
    {
        string directory = System.IO.Directory.CreateTempSubdirectory("virtio-bench-").FullName;
        bool own = image is null && needImage;
        string path = image ?? Path.Combine("/dev/shm", $"virtio-bench-{Environment.ProcessId}.img");
        var workspace = new Workspace(directory, path, own);
        if (own)
        {
            try
            {
                CreateImage(path, sizeMiB);
            }
            catch
            {
                workspace.Dispose();
                throw;
            }
        }

        return workspace;
    }

    public void Dispose()
    {
        if (_ownImage)
        {
            File.Delete(Image);
        }

        System.IO.Directory.Delete(Directory, recursive: true);
    }

    /// <summary>An image of non-zero data, so reads touch real pages.</summary>
    private static void CreateImage(string path, int sizeMiB)
    {
        using FileStream file = File.Create(path);
        byte[] chunk = new byte[1 << 20];
        new Random(7).NextBytes(chunk);
        for (int i = 0; i < sizeMiB; i++)
        {
            file.Write(chunk);
        }
    }
}
