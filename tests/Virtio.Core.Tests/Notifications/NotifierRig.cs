using System;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

/// <summary>
/// A device behind virtio-mmio with the in-process binding, an I/O thread and the host-notifier
/// controller: the pieces an embedder wires together, minus the hypervisor.
/// </summary>
internal sealed class NotifierRig : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    public NotifierRig(int capacity = int.MaxValue, CapturingLogger? logger = null)
    {
        Memory = GuestMemory.CreateAnonymous(16 << 20);
        Logger = logger ?? new CapturingLogger();
        Device = new RecordingDevice(Memory, features: VirtioFeatures.Version1, logger: Logger);
        Line = new InterruptRecorder();
        Transport = new VirtioMmioTransport(Device, Line, Logger);
        Binding = new InProcessNotifierBinding(Transport, capacity);
        IoThread = new IoThread("rig-io", Logger);
        IoThread.Start();
        Controller = new HostNotifierController(Device, Binding, [IoThread], Logger);
        Mmio = new MmioDriver(Transport);
        Guest = NewGuest();
    }

    public GuestMemory Memory { get; }

    public CapturingLogger Logger { get; }

    public RecordingDevice Device { get; }

    public InterruptRecorder Line { get; }

    public VirtioMmioTransport Transport { get; }

    public InProcessNotifierBinding Binding { get; }

    public IoThread IoThread { get; }

    public HostNotifierController Controller { get; set; }

    public MmioDriver Mmio { get; }

    public GuestDriver Guest { get; private set; }

    public HostNotifierState State => Controller.GetState(0);

    /// <summary>Resets the device and probes it again with a fresh ring, as a driver reload does.</summary>
    public void Probe()
    {
        Mmio.Status = DeviceStatus.None;
        Guest = NewGuest();
        Mmio.Initialize(VirtioFeatures.Version1, Guest);
        while (Line.UsedBufferSignal.Wait(0))
        {
        }
    }

    /// <summary>Adds one buffer and writes QueueNotify.</summary>
    public void Kick()
    {
        Guest.AddChain(BufferSpec.Write(8));
        Guest.Kick();
        Mmio.Notify(0);
    }

    /// <summary>Waits for the used-buffer interrupt and consumes every used element.</summary>
    public int WaitAndConsume()
    {
        Assert.True(Line.UsedBufferSignal.Wait(Bound, TestContext.Current.CancellationToken), "the kick was not processed in time");
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
        Memory.Dispose();
        Line.UsedBufferSignal.Dispose();
    }

    private GuestDriver NewGuest() =>
        new(Memory, new GuestAddress(0x1000), 16, 1 << 20, 4096, eventIdx: false, indirect: false);
}
