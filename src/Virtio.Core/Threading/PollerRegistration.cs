using System;

namespace Virtio.Core.Threading;

/// <summary>A poll callback of an <see cref="IoThread"/>; disposing it removes the callback.</summary>
internal sealed class PollerRegistration : IDisposable
{
    private readonly IoThread _owner;

    public PollerRegistration(IoThread owner, Func<bool> poll)
    {
        _owner = owner;
        Poll = poll;
    }

    public Func<bool> Poll { get; }

    public void Dispose() => _owner.Unregister(this);
}
