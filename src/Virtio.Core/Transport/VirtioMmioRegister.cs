namespace Virtio.Core.Transport;

/// <summary>Offsets of the virtio-mmio version 2 registers (virtio 1.2 §4.2.2).</summary>
public static class VirtioMmioRegister
{
    /// <summary>MagicValue (R): 0x74726976, "virt".</summary>
    public const int MagicValue = 0x000;
    /// <summary>Version (R): 2.</summary>
    public const int Version = 0x004;
    /// <summary>DeviceID (R).</summary>
    public const int DeviceId = 0x008;
    /// <summary>VendorID (R).</summary>
    public const int VendorId = 0x00c;
    /// <summary>DeviceFeatures (R): 32 feature bits selected by DeviceFeaturesSel.</summary>
    public const int DeviceFeatures = 0x010;
    /// <summary>DeviceFeaturesSel (W).</summary>
    public const int DeviceFeaturesSel = 0x014;
    /// <summary>DriverFeatures (W): 32 feature bits selected by DriverFeaturesSel.</summary>
    public const int DriverFeatures = 0x020;
    /// <summary>DriverFeaturesSel (W).</summary>
    public const int DriverFeaturesSel = 0x024;
    /// <summary>QueueSel (W).</summary>
    public const int QueueSel = 0x030;
    /// <summary>QueueNumMax (R).</summary>
    public const int QueueNumMax = 0x034;
    /// <summary>QueueNum (W).</summary>
    public const int QueueNum = 0x038;
    /// <summary>QueueReady (RW).</summary>
    public const int QueueReady = 0x044;
    /// <summary>QueueNotify (W): the driver's kick; the value is the queue index.</summary>
    public const int QueueNotify = 0x050;
    /// <summary>InterruptStatus (R).</summary>
    public const int InterruptStatus = 0x060;
    /// <summary>InterruptACK (W).</summary>
    public const int InterruptAck = 0x064;
    /// <summary>Status (RW).</summary>
    public const int Status = 0x070;
    /// <summary>QueueDescLow (W).</summary>
    public const int QueueDescLow = 0x080;
    /// <summary>QueueDescHigh (W).</summary>
    public const int QueueDescHigh = 0x084;
    /// <summary>QueueDriverLow (W): the available ring.</summary>
    public const int QueueDriverLow = 0x090;
    /// <summary>QueueDriverHigh (W).</summary>
    public const int QueueDriverHigh = 0x094;
    /// <summary>QueueDeviceLow (W): the used ring.</summary>
    public const int QueueDeviceLow = 0x0a0;
    /// <summary>QueueDeviceHigh (W).</summary>
    public const int QueueDeviceHigh = 0x0a4;
    /// <summary>SHMSel (W).</summary>
    public const int ShmSel = 0x0ac;
    /// <summary>SHMLenLow (R).</summary>
    public const int ShmLenLow = 0x0b0;
    /// <summary>SHMLenHigh (R).</summary>
    public const int ShmLenHigh = 0x0b4;
    /// <summary>SHMBaseLow (R).</summary>
    public const int ShmBaseLow = 0x0b8;
    /// <summary>SHMBaseHigh (R).</summary>
    public const int ShmBaseHigh = 0x0bc;
    /// <summary>QueueReset (RW), with VIRTIO_F_RING_RESET.</summary>
    public const int QueueReset = 0x0c0;
    /// <summary>ConfigGeneration (R).</summary>
    public const int ConfigGeneration = 0x0fc;
    /// <summary>Config (RW): the device-specific configuration space starts here.</summary>
    public const int Config = 0x100;
}
