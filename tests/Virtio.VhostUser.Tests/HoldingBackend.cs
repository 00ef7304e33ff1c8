using System;
using System.Collections.Generic;
using Virtio.Blk.Backends;

namespace Virtio.VhostUser.Tests;

/// <summary>Keeps every request until the test releases it (by byte offset), to complete requests out of order.</summary>
internal sealed class HoldingBackend(IBlockBackend inner) : IBlockBackend
{
    private readonly List<BlockIo> _held = [];

    public ulong Capacity => inner.Capacity;

    public bool IsReadOnly => inner.IsReadOnly;

    public BlockBackendCapabilities Capabilities => inner.Capabilities;

    public int HeldCount
    {
        get
        {
            lock (_held)
            {
                return _held.Count;
            }
        }
    }

    public void Submit(BlockIo io)
    {
        lock (_held)
        {
            _held.Add(io);
        }
    }

    /// <summary>Hands the held requests at <paramref name="offset"/> (every one when null) to the real backend.</summary>
    public void Release(ulong? offset = null)
    {
        var released = new List<BlockIo>();
        lock (_held)
        {
            foreach (BlockIo io in _held)
            {
                if (offset is null || io.Offset == offset)
                {
                    released.Add(io);
                }
            }

            _held.RemoveAll(released.Contains);
        }

        foreach (BlockIo io in released)
        {
            inner.Submit(io);
        }
    }
}
