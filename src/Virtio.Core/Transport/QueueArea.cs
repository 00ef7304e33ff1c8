namespace Virtio.Core.Transport;

/// <summary>The three areas of a virtqueue a driver places (virtio 1.2 §2.6).</summary>
internal enum QueueArea
{
    /// <summary>The descriptor area (QueueDesc, queue_desc).</summary>
    Descriptor,

    /// <summary>The driver area: the available ring (QueueDriver, queue_driver).</summary>
    Driver,

    /// <summary>The device area: the used ring (QueueDevice, queue_device).</summary>
    Device,
}
