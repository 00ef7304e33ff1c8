using System;

namespace Virtio.VhostUserDaemon;

/// <summary>Disposes several objects, in order.</summary>
internal sealed class Owned(params IDisposable[] items) : IDisposable
{
    public void Dispose()
    {
        foreach (IDisposable item in items)
        {
            item.Dispose();
        }
    }
}
