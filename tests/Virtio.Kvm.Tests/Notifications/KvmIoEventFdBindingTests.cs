using System;
using System.Collections.Generic;
using Virtio.Core.Notifications;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

public sealed class KvmIoEventFdBindingTests
{
    private static byte[] NotifyMmio(uint queue) =>
        GuestCode.Concat(GuestCode.MovEax(queue), GuestCode.StoreEaxToDoorbell, GuestCode.Hlt);

    private static byte[] NotifyPio(ushort port, uint queue) =>
        GuestCode.Concat(GuestCode.MovDx(port), GuestCode.MovEax(queue), GuestCode.OutDxAx, GuestCode.Hlt);

    [Fact]
    public void TryAssign_QueueNotifyWrite_SignalsTheEventFdAndNeverReachesTheBus()
    {
        using RealModeGuest guest = RealModeGuest.Create(NotifyMmio(2));
        var device = new RecordingIoHandler();
        guest.Bus.Add(KvmIoSpace.Mmio, RealModeGuest.DataSegmentBase, 0x200, device);
        var binding = KvmIoEventFdBinding.ForVirtioMmio(guest.Vm, RealModeGuest.DataSegmentBase);
        using EventFd kick = EventFd.Create();

        Assert.True(binding.TryAssign(2, kick, out string? refusal), refusal);
        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));

        Assert.True(kick.TryConsume(out ulong count));
        Assert.Equal(1UL, count);
        Assert.Empty(device.Accesses);
        Assert.Equal(0, guest.Vcpu.MmioExits);

        // After Deassign the same write exits to user space again.
        binding.Deassign(2, kick);
        guest.Restart();
        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));

        Assert.False(kick.TryConsume(out _));
        var access = Assert.Single(device.Accesses);
        Assert.Equal(KvmIoEventFdBinding.VirtioMmioQueueNotifyOffset, access.Offset);
        Assert.Equal(new byte[] { 2, 0, 0, 0 }, access.Data);
    }

    [Fact]
    public void TryAssign_OtherQueueIndex_DoesNotMatchAndExitsToTheBus()
    {
        using RealModeGuest guest = RealModeGuest.Create(NotifyMmio(1));
        var device = new RecordingIoHandler();
        guest.Bus.Add(KvmIoSpace.Mmio, RealModeGuest.DataSegmentBase, 0x200, device);
        var binding = KvmIoEventFdBinding.ForVirtioMmio(guest.Vm, RealModeGuest.DataSegmentBase);
        using EventFd kick = EventFd.Create();
        Assert.True(binding.TryAssign(0, kick, out string? refusal), refusal);

        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));

        Assert.False(kick.TryConsume(out _));
        Assert.Equal(new byte[] { 1, 0, 0, 0 }, Assert.Single(device.Accesses).Data);
        binding.Deassign(0, kick);
    }

    [Fact]
    public void TryAssign_PioDoorbell_SignalsTheEventFdInsteadOfThePioExit()
    {
        const ushort Port = 0x6000;
        using RealModeGuest guest = RealModeGuest.Create(NotifyPio(Port, 3));
        var port = new RecordingIoHandler();
        guest.Bus.Add(KvmIoSpace.Pio, Port, 4, port);
        var binding = new KvmIoEventFdBinding(guest.Vm, KvmIoSpace.Pio, Port, width: 2);
        using EventFd kick = EventFd.Create();

        Assert.True(binding.TryAssign(3, kick, out string? refusal), refusal);
        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));

        Assert.True(kick.TryConsume(out ulong count));
        Assert.Equal(1UL, count);
        Assert.Empty(port.Accesses);

        binding.Deassign(3, kick);
        guest.Restart();
        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));
        Assert.Equal(new byte[] { 3, 0 }, Assert.Single(port.Accesses).Data);
    }

    [Fact]
    public void TryAssign_ConfiguredCapacityReached_RefusesWithAReason()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var binding = KvmIoEventFdBinding.ForVirtioMmio(vm, 0xD0000, capacity: 1);
        using EventFd first = EventFd.Create();
        using EventFd second = EventFd.Create();

        Assert.True(binding.TryAssign(0, first, out _));
        Assert.False(binding.TryAssign(1, second, out string? refusal));
        Assert.Contains("limit of 1", refusal, StringComparison.Ordinal);
        Assert.False(binding.TryAssign(0, second, out refusal));
        Assert.Contains("already", refusal, StringComparison.Ordinal);

        binding.Deassign(0, first);
        Assert.Equal(0, binding.AssignedCount);
    }

    [Fact]
    public void TryAssign_SameDoorbellAndQueueInAnotherBinding_RefusesWithEexistInsteadOfThrowing()
    {
        // The kernel's refusal path: KVM_IOEVENTFD fails (EEXIST here) and TryAssign reports it as a refusal.
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var first = KvmIoEventFdBinding.ForVirtioMmio(vm, 0xD0000);
        var second = KvmIoEventFdBinding.ForVirtioMmio(vm, 0xD0000);
        using EventFd a = EventFd.Create();
        using EventFd b = EventFd.Create();
        Assert.True(first.TryAssign(0, a, out _));

        Assert.False(second.TryAssign(0, b, out string? refusal));

        Assert.Contains("EEXIST", refusal, StringComparison.Ordinal);
        Assert.True(second.TryAssign(1, b, out refusal), refusal);
        second.Deassign(1, b);
        first.Deassign(0, a);
    }

    [Fact]
    public void TryAssign_TwoThousandQueues_AllAcceptedAndDeassigned()
    {
        // KVM counts ioeventfds apart from the NR_IOBUS_DEVS (1000) cap on other io-bus devices (they are
        // "limited by maximum fd"), so ENOSPC does not come from ioeventfds alone: 2048 all fit.
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var binding = KvmIoEventFdBinding.ForVirtioMmio(vm, 0xD0000);
        var fds = new List<EventFd>();
        try
        {
            for (int q = 0; q < 2048; q++)
            {
                EventFd fd = EventFd.Create();
                fds.Add(fd);
                Assert.True(binding.TryAssign((ushort)q, fd, out string? refusal), refusal);
            }

            Assert.Equal(2048, binding.AssignedCount);
        }
        finally
        {
            for (int q = 0; q < fds.Count; q++)
            {
                try
                {
                    binding.Deassign((ushort)q, fds[q]);
                }
                catch (InvalidOperationException)
                {
                    // Never assigned: the loop above stopped early.
                }

                fds[q].Dispose();
            }
        }

        Assert.Equal(0, binding.AssignedCount);
    }

    [Fact]
    public void Deassign_NotAssigned_Throws()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var binding = KvmIoEventFdBinding.ForVirtioMmio(vm, 0xD0000);
        using EventFd kick = EventFd.Create();

        Assert.Throws<InvalidOperationException>(() => binding.Deassign(0, kick));
    }
}
