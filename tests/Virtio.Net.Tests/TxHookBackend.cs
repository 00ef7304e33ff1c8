using System;
using System.Runtime.InteropServices;

namespace Virtio.Net.Tests;

/// <summary>Passes everything to another backend, and runs a hook before each transmit that may refuse the frame (a busy backend).</summary>
internal sealed class TxHookBackend(INetBackend inner) : INetBackend
{
    /// <summary>Runs on the transmitting thread with the number of frames offered so far (from 0); false refuses the frame.</summary>
    public Func<int, bool>? BeforeTransmit { get; set; }

    /// <summary>Frames offered so far, refused or not.</summary>
    public int Offered { get; private set; }

    public NetOffloads Offloads => inner.Offloads;

    public SafeHandle ReceiveReadyHandle => inner.ReceiveReadyHandle;

    public void SetReceiveOffloads(NetOffloads guestOffloads) => inner.SetReceiveOffloads(guestOffloads);

    public bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame)
    {
        int index = Offered++;
        return (BeforeTransmit?.Invoke(index) ?? true) && inner.TryTransmit(header, frame);
    }

    public bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header) => inner.TryReceive(frame, out length, out header);
}
