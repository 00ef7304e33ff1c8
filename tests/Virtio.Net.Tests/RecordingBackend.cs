using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using Virtio.Core.Threading;

namespace Virtio.Net.Tests;

/// <summary>Passes everything to another backend and notes which of some I/O threads each received frame was taken on.</summary>
internal sealed class RecordingBackend(INetBackend inner, IReadOnlyList<IoThread> threads) : INetBackend
{
    private int _receivedOn = -1;

    /// <summary>The index in the thread list of the last thread that took a frame, -1 for none or another thread.</summary>
    public int ReceivedOn => Volatile.Read(ref _receivedOn);

    public NetOffloads Offloads => inner.Offloads;

    public SafeHandle ReceiveReadyHandle => inner.ReceiveReadyHandle;

    public void SetReceiveOffloads(NetOffloads guestOffloads) => inner.SetReceiveOffloads(guestOffloads);

    public bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame) => inner.TryTransmit(header, frame);

    public bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header)
    {
        if (!inner.TryReceive(frame, out length, out header))
        {
            return false;
        }

        int index = -1;
        for (int i = 0; i < threads.Count; i++)
        {
            if (threads[i].IsCurrentThread)
            {
                index = i;
            }
        }

        Volatile.Write(ref _receivedOn, index);
        return true;
    }
}
