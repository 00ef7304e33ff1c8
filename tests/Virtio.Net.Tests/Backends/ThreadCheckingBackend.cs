using System;
using System.Runtime.InteropServices;
using System.Threading;
using Virtio.Core.Threading;

namespace Virtio.Net.Tests.Backends;

/// <summary>
/// Passes everything to another backend and counts the transmit and receive calls made on, and off,
/// one <see cref="IoThread"/>. Allocates nothing, so it can stay in an allocation measurement.
/// </summary>
internal sealed class ThreadCheckingBackend(INetBackend inner) : INetBackend
{
    private IoThread? _expected;
    private int _onThread;
    private int _offThread;

    /// <summary>The thread every call should come on; set before traffic starts.</summary>
    public IoThread? Expected
    {
        get => Volatile.Read(ref _expected);
        set => Volatile.Write(ref _expected, value);
    }

    /// <summary>Calls to <see cref="TryTransmit"/> or <see cref="TryReceive"/> on <see cref="Expected"/>.</summary>
    public int OnThread => Volatile.Read(ref _onThread);

    /// <summary>Calls anywhere else.</summary>
    public int OffThread => Volatile.Read(ref _offThread);

    public NetOffloads Offloads => inner.Offloads;

    public SafeHandle ReceiveReadyHandle => inner.ReceiveReadyHandle;

    public void SetReceiveOffloads(NetOffloads guestOffloads) => inner.SetReceiveOffloads(guestOffloads);

    public bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame)
    {
        Count();
        return inner.TryTransmit(header, frame);
    }

    public bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header)
    {
        Count();
        return inner.TryReceive(frame, out length, out header);
    }

    private void Count()
    {
        if (Expected is { IsCurrentThread: true })
        {
            Interlocked.Increment(ref _onThread);
        }
        else
        {
            Interlocked.Increment(ref _offThread);
        }
    }
}
