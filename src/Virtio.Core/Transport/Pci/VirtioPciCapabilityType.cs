namespace Virtio.Core.Transport.Pci;

/// <summary>The <c>cfg_type</c> of a virtio PCI capability (virtio 1.2 §4.1.4, <c>struct virtio_pci_cap</c>).</summary>
public enum VirtioPciCapabilityType : byte
{
    /// <summary>VIRTIO_PCI_CAP_COMMON_CFG: the common configuration structure (§4.1.4.3).</summary>
    CommonConfig = 1,

    /// <summary>VIRTIO_PCI_CAP_NOTIFY_CFG: the notification doorbells, with <c>notify_off_multiplier</c> (§4.1.4.4).</summary>
    NotifyConfig = 2,

    /// <summary>VIRTIO_PCI_CAP_ISR_CFG: the ISR status byte (§4.1.4.5).</summary>
    IsrConfig = 3,

    /// <summary>VIRTIO_PCI_CAP_DEVICE_CFG: the device-specific configuration (§4.1.4.6).</summary>
    DeviceConfig = 4,

    /// <summary>VIRTIO_PCI_CAP_PCI_CFG: the window into the BARs through configuration space (§4.1.4.9).</summary>
    PciConfigAccess = 5,
}
