namespace Virtio.Core.Notifications;

/// <summary>Why a device interrupts the driver (virtio 1.2 §2.3 and §4.2.2, InterruptStatus bits).</summary>
public enum InterruptReason : byte
{
    /// <summary>The device has used a buffer of a virtqueue (InterruptStatus bit 0).</summary>
    UsedBuffer = 1,

    /// <summary>The device configuration space or the device status changed (InterruptStatus bit 1).</summary>
    ConfigurationChange = 2,
}
