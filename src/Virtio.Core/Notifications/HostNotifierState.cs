namespace Virtio.Core.Notifications;

/// <summary>
/// Where a virtqueue's driver notifications (kicks) go. See docs/notifications.md for the
/// transitions and what triggers each.
/// </summary>
public enum HostNotifierState : byte
{
    /// <summary>No event fd is assigned: a kick reaches the transport and is processed synchronously on the vCPU thread.</summary>
    Deassigned,

    /// <summary>The binding signals the queue's event fd on a kick and the device's I/O thread processes the queue.</summary>
    Assigned,

    /// <summary>An external user (a vhost-style back end) reads the event fd and processes the queue; the device does not.</summary>
    OffLimits,
}
