using System;
using System.Linq;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

public sealed class HostNotifierControllerTests
{
    [Fact]
    public void StartsDeassigned_AndAssignsAtDriverOk()
    {
        using var rig = new NotifierRig();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Probe();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
        Assert.True(rig.Binding.IsAssigned(0));
    }

    [Fact]
    public void Assigned_KickIsServedOnTheIoThread_NotTheVcpuThread()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        rig.Kick();
        Assert.Equal(1, rig.WaitAndConsume());
        Assert.NotEqual(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
    }

    [Fact]
    public void RefusedAssign_FallsBackToTheSynchronousPath_AndIsLoggedOnce()
    {
        using var rig = new NotifierRig(capacity: 0);
        rig.Probe();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Kick();
        Assert.Equal(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
        Assert.Equal(1, rig.WaitAndConsume());

        rig.Controller.Pause();
        rig.Controller.Resume();
        rig.Mmio.Status = DeviceStatus.None;
        rig.Probe();
        Assert.Single(rig.Logger.Entries, e => e.EventId.Id == 1301);
        Assert.Equal(0, rig.Device.ConcurrentProcessing);
    }

    [Fact]
    public void Refresh_AfterCapacityReturns_Assigns()
    {
        using var rig = new NotifierRig(capacity: 0);
        rig.Probe();
        rig.Binding.Capacity = 1;
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Controller.Refresh();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
    }

    [Fact]
    public void PauseAndResume_DeassignAndAssignAgain()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        rig.Controller.Pause();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        Assert.False(rig.Binding.IsAssigned(0));
        rig.Controller.Resume();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
    }

    [Fact]
    public void Reset_Deassigns_AndTheStatusWithoutDriverOkKeepsItDeassigned()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        rig.Mmio.Status = DeviceStatus.None;
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Mmio.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
    }

    [Fact]
    public void QueueReadyZero_Deassigns()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        rig.Mmio.Write(VirtioMmioRegister.QueueSel, 0);
        rig.Mmio.Write(VirtioMmioRegister.QueueReady, 0);
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Mmio.Write(VirtioMmioRegister.QueueReady, 1);
        Assert.Equal(HostNotifierState.Assigned, rig.State);
    }

    [Fact]
    public void LeavingAssigned_DrainsAKickThatRacedTheTransition()
    {
        using var rig = new NotifierRig();
        rig.Probe();

        // Stop the I/O thread's handler from seeing the kick: signal the notifier while the
        // I/O thread is busy with work that only ends after the transition was requested.
        using var gate = new System.Threading.ManualResetEventSlim();
        rig.IoThread.Schedule(_ => gate.Wait(TimeSpan.FromSeconds(10)), null);
        rig.Guest.AddChain(BufferSpec.Write(8));
        rig.Guest.Kick();
        rig.Mmio.Notify(0); // caught by the binding: the event fd is signalled, nobody reads it yet
        var pause = new System.Threading.Thread(rig.Controller.Pause);
        pause.Start();
        gate.Set();
        Assert.True(pause.Join(TimeSpan.FromSeconds(10)));

        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        Assert.Equal(1, rig.WaitAndConsume());
    }

    [Fact]
    public void LeavingTheNotifier_WithAKickUnread_ProcessesItOnTheWayOut()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        Assert.NotNull(rig.Controller.AcquireForExternalUser(0));
        rig.Controller.Pause();
        rig.Kick(); // the binding signals the event fd; nobody reads it
        Assert.Empty(rig.Device.Completed);

        rig.Controller.ReleaseFromExternalUser(0); // paused: back to Deassigned, draining the fd
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        Assert.Equal(1, rig.WaitAndConsume());
    }

    [Fact]
    public void ExternalUser_TakesTheNotifier_AndGivesItBack()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        EventFd? fd = rig.Controller.AcquireForExternalUser(0);
        Assert.NotNull(fd);
        Assert.Equal(HostNotifierState.OffLimits, rig.State);
        Assert.True(rig.Binding.IsAssigned(0));

        // A kick now is the external user's: the device does not process it.
        rig.Kick();
        Assert.True(fd!.TryConsume(out ulong count));
        Assert.Equal(1UL, count);
        Assert.Empty(rig.Device.Completed);

        // A kick the external user leaves unread is served once the notifier comes back.
        rig.Kick();
        rig.Controller.ReleaseFromExternalUser(0);
        Assert.Equal(HostNotifierState.Assigned, rig.State);
        Assert.Equal(2, rig.WaitAndConsume());
    }

    [Fact]
    public void ExternalUser_FromDeassigned_IsRefusedWhenTheBindingIsFull()
    {
        using var rig = new NotifierRig(capacity: 0);
        rig.Probe();
        Assert.Null(rig.Controller.AcquireForExternalUser(0));
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
    }

    [Fact]
    public void Revoke_FallsBackUntilRefresh()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        rig.Controller.Revoke(0);
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Kick();
        Assert.Equal(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
        rig.Controller.Refresh();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
    }

    [Fact]
    public void RestoredDevice_GetsTheRightStateFromANewController()
    {
        using var rig = new NotifierRig();
        rig.Probe();
        rig.Controller.Dispose();
        Assert.False(rig.Binding.IsAssigned(0));
        rig.Controller = new HostNotifierController(rig.Device, rig.Binding, [rig.IoThread], rig.Logger);
        Assert.Equal(HostNotifierState.Assigned, rig.State);
        rig.Kick();
        Assert.Equal(1, rig.WaitAndConsume());
    }
}
