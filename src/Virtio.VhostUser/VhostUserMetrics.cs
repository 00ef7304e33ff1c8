using System.Diagnostics.Metrics;

namespace Virtio.VhostUser;

/// <summary>Virtio.VhostUser's instruments (meter "Virtio.VhostUser").</summary>
internal static class VhostUserMetrics
{
    public static readonly Meter Meter = new("Virtio.VhostUser");

    /// <summary>Guest pages marked in a front end's dirty log (a page marked twice counts twice).</summary>
    public static readonly Counter<long> DirtyPagesMarked = Meter.CreateCounter<long>("vhost_user.dirty_log.pages.marked", description: "Guest pages marked in the front end's dirty-page log (VHOST_F_LOG_ALL) after the device wrote them.");

    /// <summary>CONFIG_CHANGE_MSG sent to a front end on its back-end request channel.</summary>
    public static readonly Counter<long> ConfigChangesSent = Meter.CreateCounter<long>("vhost_user.backend_channel.config_changes.sent", description: "VHOST_USER_BACKEND_CONFIG_CHANGE_MSG messages sent to the front end.");

    /// <summary>CONFIG_CHANGE_MSG that could not be sent at once (the front end does not read its channel, or closed it).</summary>
    public static readonly Counter<long> ConfigChangesDropped = Meter.CreateCounter<long>("vhost_user.backend_channel.config_changes.dropped", description: "Configuration-change notifications the back-end request channel could not take without waiting.");
}
