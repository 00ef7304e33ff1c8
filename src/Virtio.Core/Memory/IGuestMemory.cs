using System;

namespace Virtio.Core.Memory;

/// <summary>
/// The guest's physical memory as the device sees it: host memory mapped at guest physical
/// addresses. Every access goes through a bounds- and overflow-checked span, never a raw pointer.
/// </summary>
/// <remarks>Implementations must be safe to call from any thread once set up.</remarks>
public interface IGuestMemory
{
    /// <summary>
    /// Gets a span over <paramref name="length"/> bytes of guest memory at <paramref name="address"/>,
    /// or false when any byte of that range is not guest memory, the range overflows 64 bits, or it
    /// crosses from one memory region into another (such a buffer is rejected, never read past).
    /// </summary>
    /// <param name="address">The first guest physical address.</param>
    /// <param name="length">How many bytes; zero gives an empty span for any address.</param>
    /// <param name="span">The memory when the call succeeds.</param>
    /// <returns>True when the whole range is inside one region.</returns>
    bool TryGetSpan(GuestAddress address, int length, out Span<byte> span);
}
