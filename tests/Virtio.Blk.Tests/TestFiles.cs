using System;
using System.Diagnostics;
using System.IO;

namespace Virtio.Blk.Tests;

/// <summary>Disk images in a test directory, reading them back, and running mount/umount.</summary>
internal static class TestFiles
{
    /// <summary>A new image of <paramref name="size"/> bytes in <paramref name="directory"/>: sparse zeroes, or filled with <paramref name="fill"/>.</summary>
    public static string NewImage(DirectoryInfo directory, long size, byte fill = 0)
    {
        string path = Path.Combine(directory.FullName, $"disk-{Guid.NewGuid():N}.img");
        using (FileStream stream = File.Create(path))
        {
            if (fill == 0)
            {
                stream.SetLength(size);
            }
            else
            {
                byte[] block = new byte[4096];
                Array.Fill(block, fill);
                for (long done = 0; done < size; done += block.Length)
                {
                    stream.Write(block, 0, (int)Math.Min(block.Length, size - done));
                }
            }
        }

        return path;
    }

    /// <summary>The file's bytes at <paramref name="offset"/>, read through another descriptor.</summary>
    public static byte[] Bytes(string path, long offset, int length)
    {
        using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Position = offset;
        var data = new byte[length];
        stream.ReadExactly(data);
        return data;
    }

    /// <summary>Runs a command for at most 10 s; its exit code, or -1 when it could not run or did not finish.</summary>
    public static int Run(string file, string arguments)
    {
        try
        {
            using Process? process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, RedirectStandardOutput = true });
            if (process is null)
            {
                return -1;
            }

            process.WaitForExit(10_000);
            return process.HasExited ? process.ExitCode : -1;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
