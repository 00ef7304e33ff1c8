using System;
using System.Threading.Tasks;
using Virtio.Core.Devices;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Net.Tests;

public sealed class NetDeviceDisposeTests
{
    [Fact]
    public async Task Dispose_Twice_DoesNotThrow_AndTheDeviceIsReset()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());
        Assert.True(rig.Device.IsLive);

        rig.Device.Dispose();
        rig.Device.Dispose();
        await rig.Device.DisposeAsync();

        Assert.True(rig.Device.IsDisposed);
        Assert.False(rig.Device.IsLive);
        Assert.Equal(DeviceStatus.None, rig.Device.Status);
    }

    [Fact]
    public void FrameArrivingAfterDispose_IsNotWrittenToTheGuest_NorIsTheGuestsTxSent()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());
        rig.AddRxBuffers(4, 2048);

        rig.Device.Dispose();
        pipe.Write(Frames.Make(90));
        rig.Send(Frames.Make(70));
        rig.Mmio.Notify(1);

        // Twice round the I/O thread: a readiness handler the frame woke has run by then.
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(IoThreadRunResult.Ran, rig.IoThread.RunAndWait(static _ => { }, null, NetRig.Timeout));
        }

        Assert.False(rig.TryTakeUsed(0, out _, out _, out _));
        Assert.False(rig.TryTakeUsed(1, out _, out _, out _));
        Assert.False(pipe.TryReadNow(out _));
    }
}
