using System;

namespace Virtio.Core.Devices;

/// <summary>The device status field (virtio 1.2 §2.1).</summary>
[Flags]
public enum DeviceStatus : byte
{
    /// <summary>Reset: written by the driver to reset the device; read as the initial state.</summary>
    None = 0,

    /// <summary>ACKNOWLEDGE: the guest noticed the device.</summary>
    Acknowledge = 1,

    /// <summary>DRIVER: the guest knows how to drive the device.</summary>
    Driver = 2,

    /// <summary>DRIVER_OK: the driver is set up and the device is live.</summary>
    DriverOk = 4,

    /// <summary>FEATURES_OK: the driver finished feature negotiation and the device accepted it.</summary>
    FeaturesOk = 8,

    /// <summary>DEVICE_NEEDS_RESET: the device hit an error it cannot recover from without a reset.</summary>
    DeviceNeedsReset = 64,

    /// <summary>FAILED: the guest gave up on the device.</summary>
    Failed = 128,
}
