using System;
using Virtio.Kvm.Bus;
using Xunit;

namespace Virtio.Kvm.Tests.Bus;

public sealed class KvmBusTests
{
    [Fact]
    public void Dispatch_AddressInAWindow_ReachesItsHandlerWithTheOffset()
    {
        var bus = new KvmBus();
        var low = new RecordingIoHandler();
        var high = new RecordingIoHandler();
        bus.Add(KvmIoSpace.Mmio, 0x2000, 0x100, high);
        bus.Add(KvmIoSpace.Mmio, 0x1000, 0x100, low);

        Assert.True(bus.Dispatch(KvmIoSpace.Mmio, 0x20FF, new byte[] { 7 }, isWrite: true));
        Assert.True(bus.Dispatch(KvmIoSpace.Mmio, 0x1000, new byte[4], isWrite: false));

        Assert.Equal(0xFFUL, Assert.Single(high.Accesses).Offset);
        Assert.Equal(0UL, Assert.Single(low.Accesses).Offset);
    }

    [Fact]
    public void Dispatch_UnclaimedRead_ReadsAllOnesAndIsCounted()
    {
        var bus = new KvmBus();
        bus.Add(KvmIoSpace.Pio, 0x60, 4, new RecordingIoHandler());
        byte[] data = new byte[2];

        Assert.False(bus.Dispatch(KvmIoSpace.Pio, 0x64, data, isWrite: false));
        Assert.False(bus.Dispatch(KvmIoSpace.Mmio, 0x60, data, isWrite: true)); // other space

        Assert.Equal(new byte[] { 0xFF, 0xFF }, data);
        Assert.Equal(2, bus.UnclaimedAccesses);
    }

    [Fact]
    public void Add_OverlappingOrOutOfRangeWindow_Throws()
    {
        var bus = new KvmBus();
        bus.Add(KvmIoSpace.Mmio, 0x1000, 0x100, new RecordingIoHandler());

        Assert.Throws<ArgumentException>(() => bus.Add(KvmIoSpace.Mmio, 0x10FF, 0x10, new RecordingIoHandler()));
        Assert.Throws<ArgumentException>(() => bus.Add(KvmIoSpace.Mmio, ulong.MaxValue, 2, new RecordingIoHandler()));
        Assert.Throws<ArgumentException>(() => bus.Add(KvmIoSpace.Pio, 0xFFFF, 2, new RecordingIoHandler()));
        Assert.Throws<ArgumentOutOfRangeException>(() => bus.Add(KvmIoSpace.Pio, 0x10, 0, new RecordingIoHandler()));
        bus.Add(KvmIoSpace.Mmio, 0x1100, 0x100, new RecordingIoHandler()); // adjacent is fine
    }
}
