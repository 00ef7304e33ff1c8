using System;

namespace Virtio.Vmm.Devices;

/// <summary>Disposes what <see cref="Target"/> is set to later: a slot's owned object that is only created with its device (an io_uring backend needs the device's I/O thread).</summary>
internal sealed class LateBoundDisposable : IDisposable
{
    /// <summary>What <see cref="Dispose"/> disposes; null until it is created.</summary>
    public IDisposable? Target { get; set; }

    public void Dispose() => Target?.Dispose();
}
