using System;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>
/// The host-notifier state machine (docs/notifications.md) driven through the PCI transport, unchanged:
/// <see cref="HostNotifierController"/> with <see cref="InProcessNotifierBinding"/> catching the doorbells.
/// </summary>
public sealed class PciHostNotifierTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private sealed class Rig : IDisposable
    {
        public Rig(int capacity = int.MaxValue)
        {
            Memory = GuestMemory.CreateAnonymous(16 << 20);
            Device = new RecordingDevice(Memory, features: VirtioFeatures.Version1, logger: Logger);
            Function = new VirtioPciFunction(Device, Intx, MsiX, logger: Logger);
            Binding = new InProcessNotifierBinding(Function) { Capacity = capacity };
            IoThread = new IoThread("pci-rig-io", Logger);
            IoThread.Start();
            Controller = new HostNotifierController(Device, Binding, [IoThread], Logger);
            Driver = new PciDriver(Function);
            Driver.Probe();
            Driver.EnableMsiX(v => new MsiMessage(0xFEE0_0000, 0x50u + v));
            Guest = NewGuest();
        }

        public CapturingLogger Logger { get; } = new();

        public GuestMemory Memory { get; }

        public RecordingDevice Device { get; }

        public InterruptRecorder Intx { get; } = new();

        public MsiXRecorder MsiX { get; } = new();

        public VirtioPciFunction Function { get; }

        public InProcessNotifierBinding Binding { get; }

        public IoThread IoThread { get; }

        public HostNotifierController Controller { get; }

        public PciDriver Driver { get; }

        public GuestDriver Guest { get; private set; }

        public HostNotifierState State => Controller.GetState(0);

        public void Probe()
        {
            Driver.Status = DeviceStatus.None;
            Guest = NewGuest();
            Driver.Initialize(VirtioFeatures.Version1, Guest);
        }

        public void Kick()
        {
            Guest.AddChain(BufferSpec.Write(8));
            Guest.Kick();
            Driver.Notify(0);
        }

        /// <summary>Waits for queue 0's MSI-X vector (1) and consumes the used elements.</summary>
        public int WaitAndConsume()
        {
            Assert.True(MsiX.RaiseSignal.Wait(Bound, TestContext.Current.CancellationToken), "the kick was not served in time");
            int used = 0;
            while (Guest.TryGetUsed(out _, out _))
            {
                used++;
            }

            return used;
        }

        public void Dispose()
        {
            Controller.Dispose();
            IoThread.Dispose();
            Device.Dispose();
            Memory.Dispose();
        }

        private GuestDriver NewGuest() => new(Memory, new GuestAddress(0x1000), 16, 1 << 20, 4096, eventIdx: false, indirect: false);
    }

    [Fact]
    public void AtDriverOk_TheDoorbellIsAssigned_AndAKickIsServedOnTheIoThread()
    {
        using var rig = new Rig();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Probe();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
        Assert.True(rig.Binding.IsAssigned(0));
        rig.Kick();
        Assert.Equal(1, rig.WaitAndConsume());
        Assert.NotEqual(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
        Assert.Equal(1, rig.MsiX.RaisedCount(1)); // raised from the I/O thread, through the function's lock
        Assert.Equal(0, rig.Device.ConcurrentProcessing);
    }

    [Fact]
    public void DeviceStatusZero_Deassigns_AndTheNextProbeAssignsAgain()
    {
        using var rig = new Rig();
        rig.Probe();
        rig.Driver.Status = DeviceStatus.None;
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        Assert.False(rig.Binding.IsAssigned(0));
        rig.Probe();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
        rig.Kick();
        Assert.Equal(1, rig.WaitAndConsume());
    }

    [Fact]
    public void RefusedAssign_KeepsTheSynchronousPath_OnTheVcpuThread()
    {
        using var rig = new Rig(capacity: 0);
        rig.Probe();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Kick();
        Assert.Equal(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
        Assert.Equal(1, rig.WaitAndConsume());
        Assert.Single(rig.Logger.Entries, e => e.EventId.Id == 1301);
    }

    [Fact]
    public void PauseAndResume_DeassignAndAssignAgain_KicksBetweenAreServed()
    {
        using var rig = new Rig();
        rig.Probe();
        rig.Controller.Pause();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        rig.Kick();
        Assert.Equal(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
        Assert.Equal(1, rig.WaitAndConsume());
        rig.Controller.Resume();
        Assert.Equal(HostNotifierState.Assigned, rig.State);
        rig.Kick();
        Assert.Equal(1, rig.WaitAndConsume());
        Assert.NotEqual(Environment.CurrentManagedThreadId, rig.Device.LastProcessingThread);
    }

    [Fact]
    public void ResetFunction_Deassigns()
    {
        using var rig = new Rig();
        rig.Probe();
        rig.Function.ResetFunction();
        Assert.Equal(HostNotifierState.Deassigned, rig.State);
        Assert.False(rig.Binding.IsAssigned(0));
    }
}
