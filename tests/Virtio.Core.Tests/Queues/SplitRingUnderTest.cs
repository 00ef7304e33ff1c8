using System;
using System.Buffers.Binary;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>The split ring (virtio 1.2 §2.7) for <see cref="VirtqueueProperties"/>, through <see cref="GuestDriver"/>.</summary>
internal sealed class SplitRingUnderTest : IRingUnderTest
{
    private readonly GuestDriver _driver;
    private readonly ushort _startIndex;

    public SplitRingUnderTest(GuestDriver driver, ushort startIndex)
    {
        _driver = driver;
        _startIndex = startIndex;
    }

    public ushort QueueSize => _driver.QueueSize;

    public SplitVirtqueue CreateDeviceQueue() => _driver.CreateDeviceQueue();

    public int TryAddChain(ReadOnlySpan<BufferSpec> buffers) => _driver.TryAddChain(buffers);

    public bool Kick() => _driver.Kick();

    public bool TryGetUsed(out ushort id, out uint length) => _driver.TryGetUsed(out id, out length);

    public void EnableCallbacks() => _driver.EnableCallbacks();

    public void DisableCallbacks() => _driver.DisableCallbacks();

    public void SetUsedEvent(long slot) => _driver.SetUsedEvent((ushort)(_startIndex + slot));

    public bool DevicePoppedAll(SplitVirtqueue queue) => queue.NextAvail == _driver.AvailIndex;

    public bool DriverTookAll(SplitVirtqueue queue) => queue.NextUsed == _driver.LastUsedIndex;

    public void FillWithNoise(Random random, ulong memorySize)
    {
        // Descriptors: mostly pointing into memory (so walks go somewhere), some wild.
        ushort size = _driver.QueueSize;
        Span<byte> table = _driver.Span(_driver.DescriptorTable, _driver.Layout.DescriptorTableSize);
        random.NextBytes(table);
        for (int i = 0; i < size; i++)
        {
            Span<byte> d = table.Slice(SplitRingLayout.DescriptorOffset(i), SplitRingLayout.DescriptorSize);
            if (random.Next(4) != 0)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(d, (ulong)random.NextInt64(0, (long)memorySize));
                BinaryPrimitives.WriteUInt32LittleEndian(d[8..], (uint)random.Next(0, 64) * (random.Next(2) == 0 ? 1u : 16u));
            }

            if (random.Next(2) == 0)
            {
                d[14] = (byte)random.Next(size + 2);
                d[15] = 0;
            }
        }

        random.NextBytes(_driver.Span(_driver.AvailRing, _driver.Layout.AvailRingSize));
        random.NextBytes(_driver.Span(_driver.UsedRing, _driver.Layout.UsedRingSize));
    }

    public void Dispose() => _driver.Dispose();
}
