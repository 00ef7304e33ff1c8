using System;
using System.Threading;
using Virtio.Blk.Backends;

namespace Virtio.Blk.Tests;

/// <summary>
/// A hostile guest's accomplice: every request at <see cref="FailingOffset"/> fails at once, inside
/// Submit, and <see cref="Refill"/> puts its head straight back on the available ring (the device has
/// it back before it pops again), up to <see cref="RefillLimit"/> times. Other requests go to the inner backend.
/// </summary>
internal sealed class RefillingBackend(IBlockBackend inner) : IBlockBackend
{
    private int _refills;

    public ulong Capacity => inner.Capacity;

    public bool IsReadOnly => inner.IsReadOnly;

    public BlockBackendCapabilities Capabilities => inner.Capabilities;

    public ulong FailingOffset { get; init; }

    public int RefillLimit { get; init; }

    /// <summary>Re-posts a head on the hostile queue; called on the device's processing thread.</summary>
    public Action<ushort>? Refill { get; set; }

    public int Refills => Volatile.Read(ref _refills);

    public void Submit(BlockIo io)
    {
        if (io.Offset != FailingOffset)
        {
            inner.Submit(io);
            return;
        }

        ushort head = io.Head;
        io.Complete(BlockStatus.IoError);
        if (Refills < RefillLimit)
        {
            Interlocked.Increment(ref _refills);
            Refill?.Invoke(head);
        }
    }
}
