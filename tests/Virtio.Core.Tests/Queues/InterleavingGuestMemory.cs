using System;
using Virtio.Core.Memory;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// Real guest memory that runs another thread's step at the worst moment: <see cref="OnAccess"/>
/// is called, once, the first time the device looks up <see cref="Trigger"/>. It makes a race
/// between a device thread and a transport thread happen in one order, every run, on one thread.
/// </summary>
internal sealed class InterleavingGuestMemory(IGuestMemory memory) : IGuestMemory
{
    /// <summary>The guest address whose lookup runs <see cref="OnAccess"/>.</summary>
    public GuestAddress Trigger { get; set; }

    /// <summary>The other thread's step; cleared once run.</summary>
    public Action? OnAccess { get; set; }

    public bool TryGetSpan(GuestAddress address, int length, out Span<byte> span)
    {
        if (address == Trigger && OnAccess is { } step)
        {
            OnAccess = null;
            step();
        }

        return memory.TryGetSpan(address, length, out span);
    }
}
