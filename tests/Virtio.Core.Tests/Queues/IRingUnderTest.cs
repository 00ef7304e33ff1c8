using System;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// The guest side of one ring layout as the ring properties use it (<see cref="VirtqueueProperties"/>):
/// the split ring through <see cref="GuestDriver"/>, the packed ring through <see cref="PackedGuestDriver"/>.
/// Positions are counted in ring slots since the start of the test, so a model needs no layout arithmetic.
/// </summary>
internal interface IRingUnderTest : IDisposable
{
    /// <summary>The queue size.</summary>
    ushort QueueSize { get; }

    /// <summary>A device-side queue over the same ring, activated at the driver's positions.</summary>
    /// <returns>The queue.</returns>
    SplitVirtqueue CreateDeviceQueue();

    /// <summary>Adds a chain as the driver does; -1 when it does not fit.</summary>
    /// <param name="buffers">Readable buffers first.</param>
    /// <returns>The head index (split) or buffer ID (packed), or -1.</returns>
    int TryAddChain(ReadOnlySpan<BufferSpec> buffers);

    /// <summary>Publishes what was added and says whether the device asked for a notification.</summary>
    /// <returns>True when the driver must notify.</returns>
    bool Kick();

    /// <summary>Takes the next used buffer, if the device published one.</summary>
    /// <param name="id">The head or buffer ID.</param>
    /// <param name="length">The length the driver read.</param>
    /// <returns>False when nothing new was used.</returns>
    bool TryGetUsed(out ushort id, out uint length);

    /// <summary>Asks for used-buffer interrupts (the driver's enable, then a full barrier).</summary>
    void EnableCallbacks();

    /// <summary>Asks for no used-buffer interrupts.</summary>
    void DisableCallbacks();

    /// <summary>With EVENT_IDX, asks for an interrupt once the used slot <paramref name="slot"/> (counted from the start, may be negative) is crossed.</summary>
    /// <param name="slot">The slot.</param>
    void SetUsedEvent(long slot);

    /// <summary>Whether the device has popped everything the driver made available (positions and, on a packed ring, the avail wrap counter agree).</summary>
    /// <param name="queue">The device queue.</param>
    /// <returns>True when nothing is stranded on the ring.</returns>
    bool DevicePoppedAll(SplitVirtqueue queue);

    /// <summary>Whether the driver has taken everything the device made used (positions and, on a packed ring, the used wrap counter agree).</summary>
    /// <param name="queue">The device queue.</param>
    /// <returns>True when no used buffer waits for the driver.</returns>
    bool DriverTookAll(SplitVirtqueue queue);

    /// <summary>Fills the ring, the event or index areas and the heap with noise from <paramref name="random"/>, some descriptors pointing into memory.</summary>
    /// <param name="random">The source.</param>
    /// <param name="memorySize">Guest memory bytes.</param>
    void FillWithNoise(Random random, ulong memorySize);
}
