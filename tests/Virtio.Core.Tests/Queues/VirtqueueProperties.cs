using System;
using System.Collections.Generic;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// Ring invariants checked with FsCheck on either layout: the guest driver (Linux virtio_ring's
/// behaviour, split or packed) and the device queue run random interleavings from a script of
/// bytes and are compared with a plain model. A sealed subclass per layout supplies the ring
/// (<see cref="SplitVirtqueueProperties"/>, <see cref="PackedVirtqueueProperties"/>). Runs from a
/// fixed seed (see <see cref="RingPropertyAttribute"/>); a failure prints it.
/// </summary>
public abstract class VirtqueueProperties
{
    private const ulong NoiseMemorySize = 1 << 20;
    private static readonly GuestAddress NoiseRingBase = new(0x1000);
    private static readonly GuestAddress NoiseHeapBase = new(0x40000);

    /// <summary>Every chain made available is used exactly once, with the length the device reported (capped at its writable bytes).</summary>
    [RingProperty]
    public Property EveryBufferIsUsedExactlyOnce(byte[] script, bool eventIdx, bool indirect) =>
        Run(script, eventIdx, indirect, wrap: null);

    /// <summary>
    /// The same across wrap-around: the split ring's 16-bit indices start just below 65535; the packed
    /// ring is small (any size 1 to 8) so both wrap counters flip many times. The script runs three
    /// times, then three full laps follow, and every position wrap must flip its counter (packed) or
    /// leave it alone (split).
    /// </summary>
    [RingProperty]
    public Property EveryBufferIsUsedExactlyOnce_AcrossIndexWrap(byte[] script, bool eventIdx, bool indirect, byte back) =>
        Run(script, eventIdx, indirect, wrap: back);

    /// <summary>The used length never exceeds the writable bytes of the chain, whatever the device claims.</summary>
    [RingProperty]
    public Property UsedLengthNeverExceedsWritableBytes(byte[] claims, bool indirect)
    {
        using IRingUnderTest ring = CreateRing(blockSize: 256, eventIdx: false, indirect, wrap: null);
        SplitVirtqueue queue = ring.CreateDeviceQueue();
        foreach (byte claim in claims)
        {
            int writables = claim % 3;
            var specs = new BufferSpec[1 + writables];
            specs[0] = BufferSpec.Readable(16);
            for (int i = 0; i < writables; i++)
            {
                specs[1 + i] = BufferSpec.Write(1 + (claim * (i + 1) % 200));
            }

            int head = ring.TryAddChain(specs);
            ring.Kick();
            if (head < 0 || !queue.TryPopChain(out DescriptorChain chain))
            {
                return false.Label("pop failed");
            }

            while (chain.TryMoveNext(out _, out _))
            {
            }

            uint writable = (uint)chain.WritableLength;
            queue.AddUsed(chain.HeadIndex, (uint)claim * 7);
            queue.PublishUsed();
            if (!ring.TryGetUsed(out ushort used, out uint length) || used != head)
            {
                return false.Label("completion lost");
            }

            if (length > writable || length != Math.Min((uint)claim * 7, writable))
            {
                return false.Label($"used length {length} for {writable} writable bytes");
            }
        }

        return true.ToProperty();
    }

    /// <summary>
    /// No lost notification, device side: the device drains with notifications disabled, re-enables
    /// (with EVENT_IDX: avail_event, or the packed device event's descriptor mode), and checks
    /// again; the driver publishes at arbitrary points of that loop and kicks only when the device
    /// asked for it. Whenever the device goes idle, every published buffer was popped.
    /// </summary>
    [RingProperty]
    public Property NoNotificationIsLost(byte[] script, bool eventIdx, byte back)
    {
        using IRingUnderTest ring = CreateRing(blockSize: 4096, eventIdx, indirect: false, wrap: back);
        SplitVirtqueue queue = ring.CreateDeviceQueue();
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
                while (ring.TryGetUsed(out _, out _))
                {
                }

                if (ring.TryAddChain([BufferSpec.Readable(8)]) >= 0 && ring.Kick())
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
        for (int guard = 0; (draining || kicked) && guard < (20 * ring.QueueSize) + 20; guard++)
        {
            DeviceStep();
        }

        return (ring.DevicePoppedAll(queue) && !draining && queue.Error == QueueError.None)
            .Label($"stranded: device at {queue.NextAvail}, draining {draining}, error {queue.Error}");
    }

    /// <summary>
    /// No lost notification, driver side: the driver takes used buffers with callbacks disabled,
    /// re-enables them (with EVENT_IDX: used_event, or the packed driver event's off_wrap), which
    /// ends in a full barrier, and checks again; the device pops, uses and publishes at arbitrary
    /// points of that loop and interrupts only when the driver asked for it. Whenever the driver
    /// goes idle, it has taken every published buffer.
    /// </summary>
    [RingProperty]
    public Property NoUsedBufferNotificationIsLost(byte[] script, bool eventIdx, byte back)
    {
        using IRingUnderTest ring = CreateRing(blockSize: 4096, eventIdx, indirect: false, wrap: back);
        SplitVirtqueue queue = ring.CreateDeviceQueue();
        var inFlight = new Queue<ushort>();
        bool interrupted = false;
        bool processing = false;
        bool emptySeen = false;

        // One step of the driver's interrupt handler (a NAPI poll): the device may act between any two.
        void DriverStep()
        {
            if (!processing)
            {
                if (!interrupted)
                {
                    return;
                }

                interrupted = false;
                processing = true;
                ring.DisableCallbacks();
                return;
            }

            if (!emptySeen)
            {
                emptySeen = !ring.TryGetUsed(out _, out _);
                return;
            }

            // Nothing more was used: re-enable and check again (virtqueue_enable_cb_prepare, virtqueue_poll).
            emptySeen = false;
            ring.EnableCallbacks();
            if (ring.TryGetUsed(out _, out _))
            {
                ring.DisableCallbacks();
            }
            else
            {
                processing = false;
            }
        }

        void DeviceUse(bool publish)
        {
            if (inFlight.Count > 0 && queue.AddUsed(inFlight.Dequeue(), 0) && publish)
            {
                interrupted |= queue.PublishUsed();
            }
        }

        foreach (byte op in script)
        {
            switch (op % 4)
            {
                case 0:
                    ring.TryAddChain([BufferSpec.Write(8)]);
                    ring.Kick(); // the device below pops whether kicked or not
                    break;
                case 1:
                    if (queue.TryPopChain(out DescriptorChain chain))
                    {
                        inFlight.Enqueue(chain.HeadIndex);
                    }

                    break;
                case 2:
                    DeviceUse(publish: (op & 0x80) == 0);
                    break;
                default:
                    DriverStep();
                    break;
            }
        }

        // The device finishes what it holds and publishes; then the driver runs until idle.
        while (inFlight.Count > 0)
        {
            DeviceUse(publish: false);
        }

        interrupted |= queue.PublishUsed();
        for (int guard = 0; (processing || interrupted) && guard < (20 * ring.QueueSize) + 20; guard++)
        {
            DriverStep();
        }

        return (ring.DriverTookAll(queue) && !processing && queue.Error == QueueError.None)
            .Label($"stranded: device used up to {queue.NextUsed}, processing {processing}, error {queue.Error}");
    }

    /// <summary>
    /// With EVENT_IDX the device interrupts exactly when the driver's event slot (split used_event;
    /// packed off_wrap, a position and its lap's wrap counter) lies among the slots just published
    /// (checked by counting through them, not with the formula); without it, exactly when the
    /// driver has not disabled interrupts (split VIRTQ_AVAIL_F_NO_INTERRUPT, packed RING_EVENT_FLAGS_DISABLE).
    /// </summary>
    [RingProperty]
    public Property InterruptsExactlyWhenTheDriverAskedFor(byte[] batches, bool eventIdx, byte back)
    {
        using IRingUnderTest ring = CreateRing(blockSize: 4096, eventIdx, indirect: false, wrap: back);
        SplitVirtqueue queue = ring.CreateDeviceQueue();
        ushort size = ring.QueueSize;

        // Slots counted from the start; every chain is one buffer, so one slot on either layout.
        long old = 0;
        foreach (byte batch in batches)
        {
            int count = 1 + (batch % size);

            // The event slot from two before the batch to one past it (one before to the end for a
            // one-slot ring, where a packed wrap bit cannot tell laps further apart).
            long usedEvent = size > 1 ? old + ((batch >> 3) % (count + 4)) - 2 : old + ((batch >> 3) % (count + 2)) - 1;
            bool noInterrupt = (batch & 0x80) != 0;
            if (eventIdx)
            {
                ring.SetUsedEvent(usedEvent);
            }
            else if (noInterrupt)
            {
                ring.DisableCallbacks();
            }
            else
            {
                ring.EnableCallbacks();
            }

            for (int i = 0; i < count; i++)
            {
                ring.TryAddChain([BufferSpec.Write(4)]);
            }

            ring.Kick();
            while (queue.TryPopChain(out DescriptorChain chain))
            {
                queue.AddUsed(chain.HeadIndex, 0);
            }

            bool interrupted = queue.PublishUsed();
            long now = old + count;
            bool expected;
            if (eventIdx)
            {
                expected = false;
                for (long i = old; i != now; i++)
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
                return false.Label($"batch {old}->{now}, event slot {usedEvent}, no_interrupt {noInterrupt}: interrupted {interrupted}");
            }

            old = now;
            while (ring.TryGetUsed(out _, out _))
            {
            }
        }

        return (queue.Error == QueueError.None).Label($"queue broke: {queue.Error}");
    }

    /// <summary>
    /// Arbitrary bytes in the descriptor ring or table, the rings' index or event areas and the
    /// indirect tables, rewritten between the device's steps, and arbitrary restored positions and
    /// wrap counters: nothing throws, no buffer lies outside guest memory, every walk ends within
    /// its bound, and the queue either keeps working or breaks with a <see cref="QueueError"/> and
    /// then stays broken.
    /// </summary>
    [RingProperty]
    public Property ArbitraryRingBytesNeverEscapeGuestMemory(int seed, bool indirect, byte sizeShift)
    {
        using var memory = GuestMemory.CreateAnonymous(NoiseMemorySize);
        var random = new Random(seed);
        using IRingUnderTest ring = CreateNoiseRing(memory, NoiseRingBase, NoiseHeapBase, sizeShift, eventIdx: (seed & 1) != 0, indirect);
        ushort size = ring.QueueSize;
        SplitVirtqueue queue = ring.CreateDeviceQueue();
        if (random.Next(2) == 0)
        {
            // Positions up to twice the size: a packed position past the ring must refuse activation.
            SplitVirtqueueState state = queue.SaveState() with
            {
                NextAvail = (ushort)random.Next(2 * size),
                NextUsed = (ushort)random.Next(2 * size),
                AvailWrapCounter = random.Next(2) == 0,
                UsedWrapCounter = random.Next(2) == 0,
            };
            if (!queue.TryRestoreState(state, out QueueError restoreError))
            {
                return (restoreError != QueueError.None && !queue.TryPopChain(out _)).Label($"refused restore ({restoreError}) left a live queue");
            }
        }

        void Noise()
        {
            ring.FillWithNoise(random, NoiseMemorySize);
            random.NextBytes(NoiseHeap(memory)); // indirect tables somewhere in the heap, full of noise too
        }

        Noise();
        nint hostBase = memory.Regions[0].HostAddress;
        var popped = new List<ushort>();
        for (int step = 0; step < (4 * size) + 16; step++)
        {
            QueueError before = queue.Error;
            switch (random.Next(8))
            {
                case 0:
                case 1:
                case 2:
                    if (queue.TryPopChain(out DescriptorChain chain))
                    {
                        if (before != QueueError.None)
                        {
                            return false.Label("a broken queue popped a chain");
                        }

                        popped.Add(chain.HeadIndex);
                        long walked = 0;
                        while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
                        {
                            if (buffer.Address.Value + (ulong)buffer.Length > NoiseMemorySize)
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

                            // At most the ring's descriptors plus one indirect table's (16 bytes each, inside memory).
                            if (++walked > size + (long)(NoiseMemorySize / 16))
                            {
                                return false.Label("walk did not end within its bound");
                            }
                        }
                    }

                    break;
                case 3:
                case 4:
                    if (popped.Count > 0)
                    {
                        int pick = random.Next(popped.Count);
                        bool added = queue.AddUsed(popped[pick], (uint)random.Next());
                        popped.RemoveAt(pick);
                        if (added && before != QueueError.None)
                        {
                            return false.Label("a broken queue took a used buffer");
                        }
                    }

                    break;
                case 5:
                    queue.PublishUsed();
                    break;
                case 6:
                    if (random.Next(2) == 0)
                    {
                        queue.EnableNotification();
                    }
                    else
                    {
                        queue.DisableNotification();
                    }

                    queue.HasAvailable();
                    break;
                default:
                    Noise();
                    break;
            }

            if (before != QueueError.None && queue.Error != before)
            {
                return false.Label($"a broken queue changed its error from {before} to {queue.Error}");
            }

            if (queue.InFlightCount > size)
            {
                return false.Label($"{queue.InFlightCount} chains in flight on a ring of {size}");
            }
        }

        return true.ToProperty();
    }

    /// <summary>The ring for the model properties.</summary>
    /// <param name="blockSize">Bytes per buffer block.</param>
    /// <param name="eventIdx">Whether VIRTIO_F_EVENT_IDX is negotiated.</param>
    /// <param name="indirect">Whether VIRTIO_F_INDIRECT_DESC is negotiated.</param>
    /// <param name="wrap">Null for a plain ring of 8; otherwise a value that picks how the ring wraps soon and often.</param>
    /// <returns>The ring.</returns>
    private protected abstract IRingUnderTest CreateRing(int blockSize, bool eventIdx, bool indirect, byte? wrap);

    /// <summary>The ring for <see cref="ArbitraryRingBytesNeverEscapeGuestMemory"/>, laid out at <paramref name="ringBase"/> in <paramref name="memory"/>.</summary>
    /// <param name="memory">Guest memory.</param>
    /// <param name="ringBase">Where the ring starts.</param>
    /// <param name="heapBase">Where buffer blocks start.</param>
    /// <param name="sizeShift">Picks the queue size (1 to 64).</param>
    /// <param name="eventIdx">Whether VIRTIO_F_EVENT_IDX is negotiated.</param>
    /// <param name="indirect">Whether VIRTIO_F_INDIRECT_DESC is negotiated.</param>
    /// <returns>The ring.</returns>
    private protected abstract IRingUnderTest CreateNoiseRing(GuestMemory memory, GuestAddress ringBase, GuestAddress heapBase, byte sizeShift, bool eventIdx, bool indirect);

    private static Span<byte> NoiseHeap(GuestMemory memory) =>
        memory.TryGetSpan(NoiseHeapBase, 0x10000, out Span<byte> heap) ? heap : throw new InvalidOperationException("The heap is not guest memory.");

    private Property Run(byte[] script, bool eventIdx, bool indirect, byte? wrap)
    {
        using IRingUnderTest ring = CreateRing(blockSize: 256, eventIdx, indirect, wrap);
        SplitVirtqueue queue = ring.CreateDeviceQueue();
        var madeAvailable = new Dictionary<ushort, (long Serial, uint Writable)>();
        var reported = new Dictionary<ushort, uint>();
        var inFlight = new List<(ushort Head, uint Writable)>();
        var usedSerials = new HashSet<long>();
        long serial = 0, completed = 0;
        int availWraps = 0, usedWraps = 0;
        string? failure = null;

        // Wrap-around: a position (or 16-bit index) that does not move forward has wrapped. On a packed
        // ring that is exactly when its wrap counter flips (§2.8.1); a split ring has no counter.
        (ushort Position, bool Wrap) availSeen = (queue.NextAvail, queue.AvailWrapCounter);
        (ushort Position, bool Wrap) usedSeen = (queue.NextUsed, queue.UsedWrapCounter);
        bool CheckWrap(ref (ushort Position, bool Wrap) seen, ushort position, bool counter, ref int wraps, string which)
        {
            bool wrapped = position <= seen.Position;
            bool flipped = counter != seen.Wrap;
            seen = (position, counter);
            wraps += wrapped ? 1 : 0;
            if (flipped != (wrapped && queue.PackedRing))
            {
                failure = $"{which} position moved to {position}: wrapped {wrapped}, counter flipped {flipped}";
                return false;
            }

            return true;
        }

        bool Pop(DescriptorChain chain)
        {
            while (chain.TryMoveNext(out _, out _))
            {
            }

            if (chain.Error != QueueError.None || !madeAvailable.TryGetValue(chain.HeadIndex, out var made) || chain.WritableLength != made.Writable)
            {
                failure = $"chain {chain.HeadIndex} popped with error {chain.Error}, {chain.WritableLength} writable bytes";
                return false;
            }

            inFlight.Add((chain.HeadIndex, (uint)chain.WritableLength));
            return CheckWrap(ref availSeen, queue.NextAvail, queue.AvailWrapCounter, ref availWraps, "avail");
        }

        bool Use(int pick, uint claim)
        {
            var (head, writable) = inFlight[pick];
            inFlight.RemoveAt(pick);
            if (!queue.AddUsed(head, claim))
            {
                failure = $"AddUsed({head}) refused";
                return false;
            }

            reported[head] = Math.Min(claim, writable);
            return CheckWrap(ref usedSeen, queue.NextUsed, queue.UsedWrapCounter, ref usedWraps, "used");
        }

        bool Consume()
        {
            while (ring.TryGetUsed(out ushort head, out uint length))
            {
                if (!madeAvailable.Remove(head, out var chain) || !usedSerials.Add(chain.Serial) || !reported.Remove(head, out uint expected) || length != expected)
                {
                    failure = $"driver took {head} with length {length}, not as made available and used";
                    return false;
                }

                completed++;
            }

            return true;
        }

        bool Add(ReadOnlySpan<BufferSpec> specs)
        {
            // A driver must not make a chain (an indirect table's entries included) longer than the
            // queue size (virtio 1.2 §2.7.5.3.1, §2.8.19); the device refuses one (IndirectTableTooLarge).
            int head = specs.Length <= ring.QueueSize ? ring.TryAddChain(specs) : -1;
            if (head < 0)
            {
                return false;
            }

            uint writable = 0;
            foreach (BufferSpec spec in specs)
            {
                writable += spec.Writable ? (uint)spec.Length : 0;
            }

            madeAvailable[(ushort)head] = (serial++, writable);
            return true;
        }

        bool Drain()
        {
            ring.Kick();
            while (queue.TryPopChain(out DescriptorChain chain))
            {
                if (!Pop(chain))
                {
                    return false;
                }
            }

            for (int i = inFlight.Count - 1; i >= 0; i--)
            {
                if (!Use(i, inFlight[i].Writable))
                {
                    return false;
                }
            }

            queue.PublishUsed();
            return Consume();
        }

        bool RunScript()
        {
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

                        Add(specs);
                        break;
                    }

                    case 1:
                        ring.Kick();
                        break;
                    case 2:
                        for (int n = 1 + (op >> 5); n > 0 && queue.TryPopChain(out DescriptorChain chain); n--)
                        {
                            if (!Pop(chain))
                            {
                                return false;
                            }
                        }

                        break;
                    case 3:
                        // Out of order, as a real backend completes; a claimed length below, at or above the writable bytes.
                        if (inFlight.Count > 0)
                        {
                            if (!Use((op >> 3) % inFlight.Count, (uint)(op >> 2) * 5))
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

            return true;
        }

        for (int round = 0; round < (wrap is null ? 1 : 3); round++)
        {
            if (!RunScript())
            {
                return false.Label(failure ?? "script failed");
            }
        }

        // Drain: everything made available comes back exactly once.
        if (!Drain())
        {
            return false.Label(failure ?? "drain failed");
        }

        if (wrap is not null)
        {
            // Three full laps from wherever the script left the ring: both positions wrap at least twice.
            for (int lap = 0; lap < 3; lap++)
            {
                for (int i = 0; i < ring.QueueSize; i++)
                {
                    Add([BufferSpec.Write(8)]);
                }

                if (!Drain())
                {
                    return false.Label(failure ?? "lap failed");
                }
            }

            int least = queue.PackedRing ? 2 : 1;
            if (availWraps < least || usedWraps < least)
            {
                return false.Label($"only {availWraps} avail and {usedWraps} used wraps");
            }
        }

        return (madeAvailable.Count == 0 && completed == serial && queue.InFlightCount == 0 && queue.Error == QueueError.None && ring.DevicePoppedAll(queue) && ring.DriverTookAll(queue))
            .Label($"{madeAvailable.Count} never used, {completed}/{serial} completed, {queue.InFlightCount} in flight, error {queue.Error}");
    }
}
