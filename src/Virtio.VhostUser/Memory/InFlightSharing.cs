using System;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Devices;
using Virtio.Core.Queues;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// The in-flight regions of GET_INFLIGHT_FD (created here, laid out for the device) and
/// SET_INFLIGHT_FD (the front end's, checked against that layout and its file, then mapped).
/// </summary>
internal static class InFlightSharing
{
    /// <summary>GET_INFLIGHT_FD: a new zeroed region for the description's queues.</summary>
    public static InFlightRegion Create(VirtioDevice device, InFlightDescription description) =>
        InFlightRegion.Create(description.QueueCount, QueueSize(device, description));

    /// <summary>
    /// SET_INFLIGHT_FD: maps the region the front end kept; takes ownership of <paramref name="fd"/>.
    /// The fd must be sealed against shrinking (ours is, see <see cref="InFlightRegion.Create"/>)
    /// unless <paramref name="allowUnsealed"/>: a truncated region would fault on the next access.
    /// </summary>
    public static InFlightRegion Map(VirtioDevice device, InFlightDescription description, SafeFileHandle fd, bool allowUnsealed = false)
    {
        ushort queueSize = QueueSize(device, description);
        ulong size = description.MmapSize;
        ulong offset = description.MmapOffset;
        ulong expected = InFlightRegion.QueueRegionSize(queueSize) * description.QueueCount;
        if (size != expected || offset % (ulong)Environment.SystemPageSize != 0)
        {
            fd.Dispose();
            throw new VhostUserProtocolException($"SET_INFLIGHT_FD: mmap size {size} at offset {offset}, expected {expected} bytes at a page-aligned offset");
        }

        if (!FileSeals.CannotShrink(fd, out int seals) && !allowUnsealed)
        {
            fd.Dispose();
            throw new VhostUserProtocolException($"SET_INFLIGHT_FD: the fd is not sealed against shrinking ({FileSeals.Describe(seals)}); it could be truncated under the mapping");
        }

        long fileSize = FileStat.Size(fd);
        if (fileSize < 0 || (ulong)fileSize < offset + size)
        {
            fd.Dispose();
            throw new VhostUserProtocolException($"SET_INFLIGHT_FD: the file is {fileSize} bytes, shorter than offset + size");
        }

        try
        {
            return InFlightRegion.Map(fd, offset, size, description.QueueCount, queueSize);
        }
        catch (System.IO.IOException exception)
        {
            throw new VhostUserProtocolException($"SET_INFLIGHT_FD: {exception.Message}", exception);
        }
    }

    /// <summary>
    /// Entries per queue: the front end's queue_size is its configured ring size, but the driver may
    /// choose a larger ring (QEMU 7.2 with virtio-mmio: queue-size 128, rings of 1024). The region
    /// is ours to lay out: it has room for the largest ring the device accepts.
    /// </summary>
    private static ushort QueueSize(VirtioDevice device, InFlightDescription description)
    {
        ushort queueSize = description.QueueSize;
        foreach (SplitVirtqueue queue in device.Queues)
        {
            queueSize = Math.Max(queueSize, queue.MaxSize);
        }

        return queueSize;
    }
}
