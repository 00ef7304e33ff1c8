using Virtio.Core.Memory;
using Virtio.Core.Notifications;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>
/// One split ring as <see cref="VhostUserFrontEnd.StartVring"/> hands it to the back end: its size,
/// where its three parts lie in the guest memory given to <see cref="VhostUserFrontEnd.SetMemoryTable"/>,
/// the avail index to start from, and the kick and call eventfds.
/// </summary>
/// <param name="Size">The queue size (a power of two the back end accepts).</param>
/// <param name="DescriptorTable">Guest address of the descriptor table.</param>
/// <param name="AvailRing">Guest address of the available ring (driver area).</param>
/// <param name="UsedRing">Guest address of the used ring (device area).</param>
/// <param name="Kick">The eventfd the driver signals after adding buffers; the back end watches it.</param>
/// <param name="Call">The eventfd the back end signals after using buffers; the driver may wait on it.</param>
/// <param name="NextAvail">SET_VRING_BASE: the avail index the back end starts at (0 for a new ring).</param>
public sealed record VhostUserVringSetup(ushort Size, GuestAddress DescriptorTable, GuestAddress AvailRing, GuestAddress UsedRing, EventFd Kick, EventFd Call, ushort NextAvail = 0);
