using System;
using System.Collections.Generic;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// Ring invariants checked with FsCheck: the guest driver (Linux virtio_ring's behaviour) and the
/// device queue run random interleavings from a script of bytes and are compared with a plain
/// model. Runs from a fixed seed (see <see cref="RingPropertyAttribute"/>); a failure prints it.
/// </summary>
public sealed class SplitVirtqueueProperties
{
    private const ushort Size = 8;

    /// <summary>Every chain made available is used exactly once, with a length no larger than its writable bytes.</summary>
    [RingProperty]
    public Property EveryBufferIsUsedExactlyOnce(byte[] script, bool eventIdx, bool indirect) =>
        Run(script, eventIdx, indirect, startIndex: 0).ToProperty();

    /// <summary>The same, with both ring indices starting just below 65535 so they wrap mid-script.</summary>
    [RingProperty]
    public Property EveryBufferIsUsedExactlyOnce_AcrossIndexWrap(byte[] script, bool eventIdx, bool indirect, byte back) =>
        Run(script, eventIdx, indirect, startIndex: (ushort)(65535 - (back % 24))).ToProperty();

    /// <summary>The used length never exceeds the writable bytes of the chain, whatever the device claims.</summary>
    [RingProperty]
    public Property UsedLengthNeverExceedsWritableBytes(byte[] claims, bool indirect)
    {
        using var driver = new GuestDriver(Size, blockSize: 256, indirect: indirect);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var writable = new Dictionary<ushort, uint>();
        foreach (byte claim in claims)
        {
            int writables = claim % 3;
            var specs = new List<BufferSpec> { BufferSpec.Readable(16) };
            for (int i = 0; i < writables; i++)
            {
                specs.Add(BufferSpec.Write(1 + (claim * (i + 1) % 200)));
            }

            ushort head = driver.AddChain([.. specs]);
            driver.Kick();
            if (!queue.TryPopChain(out DescriptorChain chain))
            {
                return false.Label("pop failed");
            }

            while (chain.TryMoveNext(out _, out _))
            {
            }

            writable[head] = (uint)chain.WritableLength;
            queue.AddUsed(chain.HeadIndex, (uint)claim * 7);
            queue.PublishUsed();
            if (!driver.TryGetUsed(out ushort used, out uint length) || used != head)
            {
                return false.Label("completion lost");
            }

            if (length > writable[head] || length != Math.Min((uint)claim * 7, writable[head]))
            {
                return false.Label($"used length {length} for {writable[head]} writable bytes");
            }
        }

        return true.ToProperty();
    }

    /// <summary>
    /// No lost notification: the device drains with notifications disabled, re-enables, and
    /// re-checks; the driver publishes at arbitrary points of that loop and kicks only when the
    /// device asked for it. Whenever the device goes idle, every published buffer was popped or
    /// the driver was told to kick.
    /// </summary>
    [RingProperty]
    public Property NoNotificationIsLost(byte[] script, bool eventIdx, byte back)
    {
        using var driver = new GuestDriver(Size, eventIdx: eventIdx, startIndex: (ushort)(65535 - (back % 16)));
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        bool kicked = false;
        bool draining = false;
        bool emptySeen = false;

        // One call is one step of the device's loop, so the driver can act between any two of them,
        // including between "the ring looked empty" and "notifications re-enabled".
        void DeviceStep()
        {
            if (!draining)
            {
                if (!kicked)
                {
                    return;
                }

                kicked = false;
                draining = true;
                queue.DisableNotification();
                return;
            }

            if (!emptySeen)
            {
                if (queue.TryPopChain(out DescriptorChain chain))
                {
                    queue.AddUsed(chain.HeadIndex, 0);
                    queue.PublishUsed();
                }
                else
                {
                    emptySeen = true;
                }

                return;
            }

            // The ring looked empty: re-enable and check again (the operation under test).
            emptySeen = false;
            if (queue.EnableNotification())
            {
                queue.DisableNotification();
            }
            else
            {
                draining = false;
            }
        }

        foreach (byte op in script)
        {
            if (op % 3 == 0)
            {
                while (driver.TryGetUsed(out _, out _))
                {
                }

                if (driver.TryAddChain([BufferSpec.Readable(8)]) >= 0 && driver.Kick())
                {
                    kicked = true;
                }
            }
            else
            {
                DeviceStep();
            }
        }

        // Let the device run until it is idle with no kick pending: nothing may be stranded.
        for (int guard = 0; (draining || kicked) && guard < 20 * Size + 20; guard++)
        {
            DeviceStep();
        }

        return (queue.NextAvail == driver.AvailIndex && !draining)
            .Label($"stranded: device at {queue.NextAvail}, driver published {driver.AvailIndex}, draining {draining}");
    }

    /// <summary>
    /// With EVENT_IDX the device interrupts exactly when used_event lies in [old, new) of the
    /// publication (checked by counting through the range, not with the formula); without it,
    /// exactly when VIRTQ_AVAIL_F_NO_INTERRUPT is clear.
    /// </summary>
    [RingProperty]
    public Property InterruptsExactlyWhenTheDriverAskedFor(byte[] batches, bool eventIdx, byte back)
    {
        using var driver = new GuestDriver(Size, eventIdx: eventIdx, startIndex: (ushort)(65535 - (back % 16)));
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort old = queue.NextUsed;
        foreach (byte batch in batches)
        {
            int count = 1 + (batch % Size);
            ushort usedEvent = (ushort)(old + ((batch >> 3) % 12) - 2);
            bool noInterrupt = (batch & 0x80) != 0;
            if (eventIdx)
            {
                driver.SetUsedEvent(usedEvent);
            }
            else if (noInterrupt)
            {
                driver.DisableCallbacks();
            }
            else
            {
                driver.EnableCallbacks();
            }

            for (int i = 0; i < count; i++)
            {
                driver.AddChain(BufferSpec.Write(4));
            }

            driver.Kick();
            while (queue.TryPopChain(out DescriptorChain chain))
            {
                queue.AddUsed(chain.HeadIndex, 0);
            }

            bool interrupted = queue.PublishUsed();
            ushort now = queue.NextUsed;
            bool expected;
            if (eventIdx)
            {
                expected = false;
                for (ushort i = old; i != now; i++)
                {
                    expected |= i == usedEvent;
                }
            }
            else
            {
                expected = !noInterrupt;
            }

            if (interrupted != expected)
            {
                return false.Label($"batch {old}->{now}, used_event {usedEvent}, no_interrupt {noInterrupt}: interrupted {interrupted}");
            }

            old = now;
            while (driver.TryGetUsed(out _, out _))
            {
            }

            if (eventIdx)
            {
                driver.SetUsedEvent(usedEvent); // TryGetUsed moved it; keep the script's value
            }
        }

        return true.ToProperty();
    }

    /// <summary>
    /// Arbitrary bytes in the descriptor table and the rings never throw, never yield a buffer
    /// outside guest memory, and every walk ends within its bound.
    /// </summary>
    [RingProperty]
    public Property ArbitraryRingBytesNeverEscapeGuestMemory(int seed, bool indirect, byte sizeShift)
    {
        ushort size = (ushort)(1 << (sizeShift % 7)); // 1..64
        const ulong memorySize = 1 << 20;
        using var memory = GuestMemory.CreateAnonymous(memorySize);
        var random = new Random(seed);
        var driver = new GuestDriver(memory, new GuestAddress(0x1000), size, 0x40000, 4096, eventIdx: (seed & 1) != 0, indirect: indirect);
        SplitVirtqueue queue = driver.CreateDeviceQueue();

        // Descriptors: mostly pointing into memory (so walks go somewhere), some wild.
        Span<byte> table = driver.Span(driver.DescriptorTable, driver.Layout.DescriptorTableSize);
        random.NextBytes(table);
        for (int i = 0; i < size; i++)
        {
            Span<byte> d = table.Slice(SplitRingLayout.DescriptorOffset(i), SplitRingLayout.DescriptorSize);
            if (random.Next(4) != 0)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(d, (ulong)random.NextInt64(0, (long)memorySize));
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(d[8..], (uint)random.Next(0, 64) * (random.Next(2) == 0 ? 1u : 16u));
            }

            if (random.Next(2) == 0)
            {
                d[14] = (byte)random.Next(size + 2);
                d[15] = 0;
            }
        }

        // Indirect tables somewhere in the heap, full of noise too.
        random.NextBytes(driver.Span(new GuestAddress(0x40000), 0x10000));
        random.NextBytes(driver.Span(driver.AvailRing, driver.Layout.AvailRingSize));
        random.NextBytes(driver.Span(driver.UsedRing, driver.Layout.UsedRingSize));

        nint hostBase = memory.Regions[0].HostAddress;
        long steps = 0;
        int pops = 0;
        while (pops <= size && queue.TryPopChain(out DescriptorChain chain))
        {
            pops++;
            while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
            {
                steps++;
                if (buffer.Address.Value + (ulong)buffer.Length > memorySize)
                {
                    return false.Label($"buffer {buffer.Address}+{buffer.Length} escapes guest memory");
                }

                unsafe
                {
                    fixed (byte* p = buffer.Span)
                    {
                        if (buffer.Length > 0 && (nint)p != hostBase + (nint)buffer.Address.Value)
                        {
                            return false.Label("span does not map the descriptor's address");
                        }
                    }
                }

                if (steps > (long)size * (size + 2))
                {
                    return false.Label("walk did not end within its bound");
                }
            }

            queue.AddUsed(chain.HeadIndex, (uint)random.Next());
        }

        queue.PublishUsed();
        queue.EnableNotification();
        return (pops <= size).Label("popped more chains than the ring holds");
    }

    private static bool Run(byte[] script, bool eventIdx, bool indirect, ushort startIndex)
    {
        using var driver = new GuestDriver(Size, blockSize: 256, eventIdx: eventIdx, indirect: indirect, startIndex: startIndex);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var madeAvailable = new Dictionary<ushort, (long Serial, uint Writable)>();
        var inFlight = new List<(ushort Head, uint Writable)>();
        var usedSerials = new HashSet<long>();
        long serial = 0, completed = 0;

        bool Consume()
        {
            while (driver.TryGetUsed(out ushort head, out uint length))
            {
                if (!madeAvailable.Remove(head, out var chain) || !usedSerials.Add(chain.Serial) || length > chain.Writable)
                {
                    return false;
                }

                completed++;
            }

            return true;
        }

        foreach (byte op in script)
        {
            switch (op % 5)
            {
                case 0:
                {
                    int readables = op >> 6, writables = (op >> 4) & 3;
                    if (readables + writables == 0)
                    {
                        writables = 1;
                    }

                    var specs = new BufferSpec[readables + writables];
                    for (int i = 0; i < specs.Length; i++)
                    {
                        specs[i] = new BufferSpec(1 + ((op * (i + 3)) % 200), i >= readables);
                    }

                    int head = driver.TryAddChain(specs);
                    if (head >= 0)
                    {
                        uint writable = 0;
                        for (int i = readables; i < specs.Length; i++)
                        {
                            writable += (uint)specs[i].Length;
                        }

                        madeAvailable[(ushort)head] = (serial++, writable);
                    }

                    break;
                }

                case 1:
                    driver.Kick();
                    break;
                case 2:
                    for (int n = 1 + (op >> 5); n > 0 && queue.TryPopChain(out DescriptorChain chain); n--)
                    {
                        while (chain.TryMoveNext(out _, out _))
                        {
                        }

                        if (chain.Error != QueueError.None || chain.WritableLength != madeAvailable[chain.HeadIndex].Writable)
                        {
                            return false;
                        }

                        inFlight.Add((chain.HeadIndex, (uint)chain.WritableLength));
                    }

                    break;
                case 3:
                    if (inFlight.Count > 0)
                    {
                        int pick = (op >> 3) % inFlight.Count; // out of order, as a real backend completes
                        var (head, writable) = inFlight[pick];
                        inFlight.RemoveAt(pick);
                        if (!queue.AddUsed(head, writable + (uint)(op >> 5)))
                        {
                            return false;
                        }

                        if ((op & 0x80) != 0)
                        {
                            queue.PublishUsed();
                        }
                    }

                    break;
                default:
                    queue.PublishUsed();
                    if (!Consume())
                    {
                        return false;
                    }

                    break;
            }
        }

        // Drain: everything made available comes back exactly once.
        driver.Kick();
        while (queue.TryPopChain(out DescriptorChain chain))
        {
            while (chain.TryMoveNext(out _, out _))
            {
            }

            inFlight.Add((chain.HeadIndex, (uint)chain.WritableLength));
        }

        foreach (var (head, writable) in inFlight)
        {
            if (!queue.AddUsed(head, writable))
            {
                return false;
            }
        }

        queue.PublishUsed();
        return Consume() && madeAvailable.Count == 0 && completed == serial && queue.InFlightCount == 0 && queue.Error == QueueError.None;
    }
}
