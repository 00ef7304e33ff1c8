using System;
using Virtio.Core.Devices;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>A <see cref="RecordingDevice"/> behind a <see cref="VirtioPciFunction"/>, with the embedder's INTx line and MSI-X recorded.</summary>
internal sealed class PciRig : IDisposable
{
    public PciRig(int queues = 2, ushort queueMaxSize = 256, VirtioPciFunctionOptions? options = null, bool msiX = true, ulong features = VirtioFeatures.CoreDefaults)
    {
        Guest = new GuestDriver(64);
        Device = new RecordingDevice(Guest.Memory, features: features, queues: queues, queueMaxSize: queueMaxSize, logger: Logger);
        MsiX = new MsiXRecorder();
        Function = new VirtioPciFunction(Device, Intx, msiX ? MsiX : null, options, Logger);
        Driver = new PciDriver(Function);
    }

    public CapturingLogger Logger { get; } = new();

    public GuestDriver Guest { get; }

    public RecordingDevice Device { get; }

    public InterruptRecorder Intx { get; } = new();

    public MsiXRecorder MsiX { get; }

    public VirtioPciFunction Function { get; }

    public PciDriver Driver { get; }

    /// <summary>How many times event 1501 was logged for <paramref name="kind"/>.</summary>
    public int Logged(string kind)
    {
        int count = 0;
        foreach (var entry in Logger.Entries)
        {
            if (entry.EventId.Id == 1501 && entry.Message.Contains("ignored " + kind + " ", StringComparison.Ordinal))
            {
                count++;
            }
        }

        return count;
    }

    public void Dispose()
    {
        Device.Dispose();
        Guest.Dispose();
    }
}
