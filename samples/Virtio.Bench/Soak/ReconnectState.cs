using System;
using Virtio.Core.Memory;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;

namespace Virtio.Bench.Soak;

/// <summary>
/// What a soak front end keeps across its connections, as a VMM does: the in-flight buffer of the
/// first connection's GET_INFLIGHT_FD (handed to every later one with SET_INFLIGHT_FD) and the
/// memory table it sends (the driver's memory, or since the last <see cref="ChangeMemoryTable"/> a
/// <see cref="MemoryAlias"/> of it). One thread.
/// </summary>
internal sealed class ReconnectState : IDisposable
{
    private readonly GuestMemory _memory;
    private readonly ushort _queueCount;
    private readonly ushort _queueSize;
    private readonly SoakCounters _counters;
    private GuestMemory _current;
    private VhostUserInFlightBuffer? _inFlight;

    /// <summary>Keeps <paramref name="memory"/> (the driver's; not disposed here) and an in-flight buffer for <paramref name="queueCount"/> rings of <paramref name="queueSize"/>.</summary>
    public ReconnectState(GuestMemory memory, ushort queueCount, ushort queueSize, SoakCounters counters)
    {
        _memory = memory;
        _current = memory;
        _queueCount = queueCount;
        _queueSize = queueSize;
        _counters = counters;
    }

    /// <summary>A new connection: the in-flight buffer (when the back end offers it), then SET_MEM_TABLE; before any ring starts.</summary>
    public void HandOver(VhostUserFrontEnd frontEnd, VhostUserNegotiation negotiation)
    {
        if ((negotiation.ProtocolFeatures & VhostUserProtocolFeatures.InFlightSharedMemory) != 0)
        {
            if (_inFlight is null)
            {
                _inFlight = frontEnd.GetInFlightFd(_queueCount, _queueSize);
            }
            else
            {
                frontEnd.SetInFlightFd(_inFlight);
            }
        }

        frontEnd.SetMemoryTable(_current);
    }

    /// <summary>A new SET_MEM_TABLE on a running connection: the same pages through fresh fds at new host addresses.</summary>
    public void ChangeMemoryTable(VhostUserFrontEnd frontEnd)
    {
        GuestMemory next = MemoryAlias.Create(_memory);
        try
        {
            frontEnd.SetMemoryTable(next);
        }
        catch
        {
            next.Dispose();
            throw;
        }

        DisposeAlias();
        _current = next;
        _counters.MemTableChanged();
    }

    public void Dispose()
    {
        DisposeAlias();
        _inFlight?.Dispose();
    }

    private void DisposeAlias()
    {
        if (!ReferenceEquals(_current, _memory))
        {
            _current.Dispose();
        }
    }
}
