using System;
using System.Diagnostics.Metrics;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// A completion resumes device code on whichever thread finished the request (a backend worker,
/// the thread pool). An exception there must break that queue (DEVICE_NEEDS_RESET, event 1105),
/// as one out of queue processing does, and not reach the backend's thread (review finding 6).
/// </summary>
public sealed class CompletionFaultTests
{
    [Fact]
    public void AnExceptionWhileACompletionIsPushed_BreaksTheQueue_NotTheCompletingThread()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty);
        faulty.Rule = _ => Fault.Hold;
        rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 512);
        faulty.WaitHeld(1);

        // Device code on the completion path throws: here an embedder's metrics listener, which
        // runs inside the device's counter update, fails once on this thread.
        int completingThread = Environment.CurrentManagedThreadId;
        int thrown = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "virtio.blk.requests.completed")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) =>
        {
            if (Environment.CurrentManagedThreadId == completingThread && Interlocked.Exchange(ref thrown, 1) == 0)
            {
                throw new InvalidOperationException("the metrics listener failed");
            }
        });
        listener.Start();
        faulty.Rule = null;

        // The completing thread is this one, outside any queue processing (as a backend worker is).
        Exception? escaped = Record.Exception(() => faulty.ReleaseHeld());
        listener.Dispose();

        Assert.Null(escaped);
        Assert.Equal(QueueError.DeviceFailed, rig.Device.Queues[0].Error);
        Assert.True((rig.Device.Status & DeviceStatus.DeviceNeedsReset) != 0);
        Assert.Single(rig.Logger.Entries, e => e.EventId.Id == 1105 && e.Exception is InvalidOperationException);
    }
}
