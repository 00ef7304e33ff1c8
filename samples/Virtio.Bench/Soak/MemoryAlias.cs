using System;
using System.Globalization;
using System.IO;
using Tmds.Linux;
using Virtio.Core.Memory;

namespace Virtio.Bench.Soak;

/// <summary>
/// A new memory table for the same guest memory, as a VMM sends after hot-plug: every region's
/// memfd opened again through /proc/self/fd (a fresh fd and open file, the same pages) and mapped
/// at a new host address, so the back end gets other fds and other user addresses and must map it
/// all again, while the driver's rings and buffers (in the original mapping) stay where they are and
/// requests may stay in flight across the change.
/// </summary>
internal static class MemoryAlias
{
    public static unsafe GuestMemory Create(GuestMemory original)
    {
        var regions = new GuestMemoryRegion[original.Regions.Count];
        try
        {
            for (int i = 0; i < regions.Length; i++)
            {
                GuestMemoryRegion region = original.Regions[i];
                int fd = (int)(region.FileDescriptor ?? throw new ArgumentException($"region {i} has no fd")).DangerousGetHandle();
                string path = "/proc/self/fd/" + fd.ToString(CultureInfo.InvariantCulture);
                int fresh;
                fixed (byte* p = System.Text.Encoding.ASCII.GetBytes(path + "\0"))
                {
                    // SAFETY: p is a NUL-terminated path that outlives the call; the fd returned is ours.
                    fresh = LibC.open(p, LibC.O_RDWR | LibC.O_CLOEXEC);
                }

                if (fresh < 0)
                {
                    throw new IOException($"open {path}: errno {LibC.errno}");
                }

                regions[i] = GuestMemoryRegion.MapFileDescriptor(region.Start, region.Size, fresh, region.FileOffset);
            }

            return new GuestMemory(regions);
        }
        catch
        {
            foreach (GuestMemoryRegion? region in regions)
            {
                region?.Dispose();
            }

            throw;
        }
    }
}
