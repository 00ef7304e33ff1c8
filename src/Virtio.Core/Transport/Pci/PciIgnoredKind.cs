namespace Virtio.Core.Transport.Pci;

/// <summary>The kinds of guest access a <see cref="VirtioPciFunction"/> ignores; each is logged once.</summary>
internal enum PciIgnoredKind
{
    /// <summary>A configuration-space access that is not 1, 2 or 4 bytes, naturally aligned.</summary>
    ConfigWrongWidth,

    /// <summary>A configuration-space offset outside 0 to 4095.</summary>
    ConfigOutOfRange,

    /// <summary>A common configuration access not of its field's width (virtio 1.2 §4.1.3.1), or inside a field.</summary>
    CommonWrongWidth,

    /// <summary>A write of a read-only common configuration field.</summary>
    CommonReadOnly,

    /// <summary>An access past the common configuration's fields (queue_notify_data, queue_reset: not offered).</summary>
    CommonUnknown,

    /// <summary>A queue field written while the queue is enabled.</summary>
    QueueEnabled,

    /// <summary>A queue field, or a doorbell, of a queue that does not exist.</summary>
    NoSuchQueue,

    /// <summary>A write of 0 to queue_enable (virtio 1.2 §4.1.4.3.2: the driver must not).</summary>
    QueueDisable,

    /// <summary>An ISR access other than a 1-byte read of its byte.</summary>
    IsrAccess,

    /// <summary>A device configuration access not 1, 2, 4 or 8 bytes naturally aligned, or past its length.</summary>
    DeviceConfigAccess,

    /// <summary>A doorbell access other than a 16-bit (or 32-bit) write at a queue's doorbell.</summary>
    NotifyAccess,

    /// <summary>A doorbell write while Bus Master Enable is clear: the device may not touch guest memory.</summary>
    NotifyWithoutBusMaster,

    /// <summary>An MSI-X table or PBA access that is not a 4-byte or 8-byte naturally aligned one (PCI 3.0 §6.8.2).</summary>
    MsiXWrongWidth,

    /// <summary>A write of the Pending Bit Array, which is read-only.</summary>
    PbaWrite,

    /// <summary>An access to a part of a BAR that holds nothing, or one that runs past the BAR's end.</summary>
    BarUnused,

    /// <summary>A PCI configuration access capability window access with a bad bar, offset or length (virtio 1.2 §4.1.4.9).</summary>
    ConfigWindow,
}
