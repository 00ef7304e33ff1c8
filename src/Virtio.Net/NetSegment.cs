using Virtio.Core.Memory;

namespace Virtio.Net;

/// <summary>One piece of a frame in guest memory: where it starts and how long it is.</summary>
/// <param name="Address">The guest physical address.</param>
/// <param name="Length">Bytes.</param>
public readonly record struct NetSegment(GuestAddress Address, int Length);
