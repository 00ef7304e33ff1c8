using System.Collections.Generic;
using System.Threading;

namespace Virtio.Core.Devices;

// The name that tags the device's Virtio.Core measurements (docs/metrics.md).
public abstract partial class VirtioDevice
{
    private string? _metricsName;

    /// <summary>
    /// The <c>virtio.device</c> tag's value on the device's Virtio.Core measurements. A device package
    /// sets it to its device's name in its constructor (Virtio.Blk and Virtio.Net do, so their devices
    /// carry one name in every meter); otherwise <c>device0</c>, <c>device1</c>, ... in the order the
    /// names are first needed. Read from any thread.
    /// </summary>
    internal string MetricsName
    {
        get => Volatile.Read(ref _metricsName) ?? DefaultMetricsName();
        set => Volatile.Write(ref _metricsName, value);
    }

    /// <summary>The <c>virtio.device</c> tag (no allocation: the name is a string already).</summary>
    internal KeyValuePair<string, object?> MetricsDeviceTag => new(CoreMetrics.DeviceTagName, MetricsName);

    private string DefaultMetricsName()
    {
        Interlocked.CompareExchange(ref _metricsName, CoreMetrics.NextUnnamedDevice(), null);
        return _metricsName!;
    }
}
