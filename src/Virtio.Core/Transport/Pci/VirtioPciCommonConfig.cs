namespace Virtio.Core.Transport.Pci;

/// <summary>
/// Offsets of the fields of the common configuration structure (virtio 1.2 §4.1.4.3,
/// <c>struct virtio_pci_common_cfg</c>), relative to the structure's start, and their widths.
/// A driver accesses each field with its own width (§4.1.3); a 64-bit field as two 32-bit halves.
/// </summary>
public static class VirtioPciCommonConfig
{
    /// <summary>device_feature_select (le32, RW).</summary>
    public const int DeviceFeatureSelect = 0x00;
    /// <summary>device_feature (le32, R): 32 feature bits selected by device_feature_select.</summary>
    public const int DeviceFeature = 0x04;
    /// <summary>driver_feature_select (le32, RW).</summary>
    public const int DriverFeatureSelect = 0x08;
    /// <summary>driver_feature (le32, RW): 32 feature bits selected by driver_feature_select.</summary>
    public const int DriverFeature = 0x0C;
    /// <summary>config_msix_vector (le16, RW): the MSI-X vector of configuration changes.</summary>
    public const int ConfigMsixVector = 0x10;
    /// <summary>num_queues (le16, R).</summary>
    public const int NumQueues = 0x12;
    /// <summary>device_status (u8, RW): writing 0 resets the device.</summary>
    public const int DeviceStatus = 0x14;
    /// <summary>config_generation (u8, R).</summary>
    public const int ConfigGeneration = 0x15;
    /// <summary>queue_select (le16, RW): the queue the queue_* fields below refer to.</summary>
    public const int QueueSelect = 0x16;
    /// <summary>queue_size (le16, RW): the queue's maximum size on reset; 0 for a queue that does not exist.</summary>
    public const int QueueSize = 0x18;
    /// <summary>queue_msix_vector (le16, RW).</summary>
    public const int QueueMsixVector = 0x1A;
    /// <summary>queue_enable (le16, RW): the driver writes 1 to start the queue.</summary>
    public const int QueueEnable = 0x1C;
    /// <summary>queue_notify_off (le16, R): the queue's doorbell, in units of notify_off_multiplier.</summary>
    public const int QueueNotifyOff = 0x1E;
    /// <summary>queue_desc (le64, RW): the descriptor area.</summary>
    public const int QueueDesc = 0x20;
    /// <summary>queue_driver (le64, RW): the driver area (available ring).</summary>
    public const int QueueDriver = 0x28;
    /// <summary>queue_device (le64, RW): the device area (used ring).</summary>
    public const int QueueDevice = 0x30;
    /// <summary>The structure's length without queue_notify_data and queue_reset, which this transport does not offer.</summary>
    public const int Length = 0x38;
}
