using System;

namespace Virtio.Net.Backends;

/// <summary>
/// Two backends wired back to back, like two network cards on one cable: a frame transmitted on
/// <see cref="First"/> is received on <see cref="Second"/> and the other way round, virtio-net
/// headers included. Each direction holds up to a fixed number of frames; a full direction
/// refuses further frames (the transmitting device drops and counts them).
/// </summary>
public sealed class LoopbackPair : IDisposable
{
    /// <summary>Creates the pair. Any thread.</summary>
    /// <param name="capacity">Frames each direction holds.</param>
    /// <param name="offloads">Offloads both ends claim (headers pass through unchanged).</param>
    public LoopbackPair(int capacity = 256, NetOffloads offloads = NetOffloads.Checksum | NetOffloads.Tso4 | NetOffloads.Tso6)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        var first = new LoopbackEndpoint(capacity, offloads);
        var second = new LoopbackEndpoint(capacity, offloads);
        first.Peer = second;
        second.Peer = first;
        First = first;
        Second = second;
    }

    /// <summary>One end.</summary>
    public INetBackend First { get; }

    /// <summary>The other end.</summary>
    public INetBackend Second { get; }

    /// <summary>Closes both ends' readiness fds. Call after the devices stopped using them.</summary>
    public void Dispose()
    {
        ((LoopbackEndpoint)First).Dispose();
        ((LoopbackEndpoint)Second).Dispose();
    }
}
