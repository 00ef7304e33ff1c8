using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;

namespace Virtio.Core.Transport.Pci;

/// <summary>Counts every ignored access of one PCI function and logs the first of each kind (event 1501).</summary>
internal sealed class PciAccessLog(VirtioDevice device, ILogger logger)
{
    private int _loggedKinds;

    public ILogger Logger => logger;

    /// <summary>Counts the ignored access and logs it when it is the first of its kind.</summary>
    /// <param name="kind">What was wrong.</param>
    /// <param name="region">Where: "config", "common", "isr", "device", "notify", "msix" or "bar N".</param>
    /// <param name="offset">The offset within that region.</param>
    /// <param name="size">The access's width in bytes.</param>
    public void Ignore(PciIgnoredKind kind, string region, ulong offset, int size)
    {
        CoreMetrics.PciIgnoredAccesses.Add(1, device.MetricsDeviceTag);
        int bit = 1 << (int)kind;
        if ((Interlocked.Or(ref _loggedKinds, bit) & bit) == 0)
        {
            Log.PciIgnoredAccess(logger, kind.ToString(), region, offset, size);
        }
    }
}
