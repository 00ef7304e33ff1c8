using System;
using Microsoft.Win32.SafeHandles;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>
/// The in-flight tracking buffer a back end created for GET_INFLIGHT_FD (vhost-user.rst, "Inflight
/// I/O tracking"): the front end keeps it across reconnects and hands it to every later back end
/// with <see cref="VhostUserFrontEnd.SetInFlightFd"/>, so a back end that died with requests in
/// flight can be followed by one that resubmits them. Owns the fd.
/// </summary>
public sealed class VhostUserInFlightBuffer : IDisposable
{
    internal VhostUserInFlightBuffer(SafeFileHandle fd, ulong mmapSize, ulong mmapOffset, ushort queueCount, ushort queueSize)
    {
        Fd = fd;
        MmapSize = mmapSize;
        MmapOffset = mmapOffset;
        QueueCount = queueCount;
        QueueSize = queueSize;
    }

    /// <summary>The buffer's file (a memfd the back end made).</summary>
    public SafeFileHandle Fd { get; }

    /// <summary>Bytes of the buffer, as the back end said.</summary>
    public ulong MmapSize { get; }

    /// <summary>Where the buffer starts in <see cref="Fd"/>.</summary>
    public ulong MmapOffset { get; }

    /// <summary>Queues the buffer covers (as asked).</summary>
    public ushort QueueCount { get; }

    /// <summary>Entries per queue (as asked).</summary>
    public ushort QueueSize { get; }

    /// <summary>Closes the fd.</summary>
    public void Dispose() => Fd.Dispose();
}
