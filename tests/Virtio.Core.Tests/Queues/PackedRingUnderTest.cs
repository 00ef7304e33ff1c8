using System;
using System.Buffers.Binary;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>The packed ring (virtio 1.2 §2.8) for <see cref="VirtqueueProperties"/>, through <see cref="PackedGuestDriver"/>.</summary>
internal sealed class PackedRingUnderTest : IRingUnderTest
{
    private readonly PackedGuestDriver _driver;

    public PackedRingUnderTest(PackedGuestDriver driver) => _driver = driver;

    public ushort QueueSize => _driver.QueueSize;

    public SplitVirtqueue CreateDeviceQueue() => _driver.CreateDeviceQueue();

    public int TryAddChain(ReadOnlySpan<BufferSpec> buffers) => _driver.TryAddChain(buffers);

    public bool Kick() => _driver.Kick();

    public bool TryGetUsed(out ushort id, out uint length) => _driver.TryGetUsed(out id, out length);

    public void EnableCallbacks() => _driver.EnableCallbacks();

    public void DisableCallbacks() => _driver.DisableCallbacks();

    public void SetUsedEvent(long slot)
    {
        // Slot 0 is position 0 of the first lap, whose wrap counter is 1 (§2.8.1).
        long lap = Math.DivRem(slot, _driver.QueueSize, out long position);
        if (position < 0)
        {
            position += _driver.QueueSize;
            lap--;
        }

        _driver.SetUsedEvent((ushort)position, (lap & 1) == 0);
    }

    public bool DevicePoppedAll(SplitVirtqueue queue) =>
        queue.NextAvail == _driver.NextAvail && queue.AvailWrapCounter == _driver.AvailWrapCounter;

    public bool DriverTookAll(SplitVirtqueue queue) =>
        queue.NextUsed == _driver.LastUsed && queue.UsedWrapCounter == _driver.UsedWrapCounter;

    public void FillWithNoise(Random random, ulong memorySize)
    {
        // Descriptors: mostly pointing into memory, IDs mostly below the size, flags anything
        // (so some look available in either lap, some chain with NEXT, some are indirect).
        ushort size = _driver.QueueSize;
        Span<byte> ring = _driver.Span(_driver.DescriptorRing, size * PackedRingLayout.DescriptorSize);
        random.NextBytes(ring);
        for (int i = 0; i < size; i++)
        {
            Span<byte> d = ring.Slice(PackedRingLayout.DescriptorOffset(i), PackedRingLayout.DescriptorSize);
            if (random.Next(4) != 0)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(d, (ulong)random.NextInt64(0, (long)memorySize));
                BinaryPrimitives.WriteUInt32LittleEndian(d[PackedRingLayout.LengthOffset..], (uint)random.Next(0, 64) * (random.Next(2) == 0 ? 1u : 16u));
            }

            if (random.Next(2) == 0)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(d[PackedRingLayout.IdOffset..], (ushort)random.Next(size + 2));
            }

            if (random.Next(2) == 0)
            {
                // Plausible flags: this lap's or the other's AVAIL/USED bits with NEXT, WRITE, INDIRECT.
                ushort lap = PackedGuestDriver.LapFlags(random.Next(2) == 0);
                BinaryPrimitives.WriteUInt16LittleEndian(d[PackedRingLayout.FlagsOffset..], (ushort)(lap | random.Next(8)));
            }
        }

        random.NextBytes(_driver.Span(_driver.DriverEvent, PackedRingLayout.EventSuppressionSize));
        random.NextBytes(_driver.Span(_driver.DeviceEvent, PackedRingLayout.EventSuppressionSize));
    }

    public void Dispose() => _driver.Dispose();
}
