using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Testing;

/// <summary>
/// A minimal device for Core's tests: drains each notified queue in the canonical loop (disable
/// notifications, pop and walk every chain, fill writable buffers, publish once, re-enable and
/// check again), completing each chain with all its writable bytes.
/// </summary>
internal sealed class RecordingDevice : VirtioDevice
{
    /// <summary>The device ID it reports (not assigned by the specification to any device).</summary>
    public const ushort TestDeviceId = 0x3F;

    private readonly byte[] _config;

    /// <summary>Creates the device.</summary>
    public RecordingDevice(IGuestMemory memory, ulong features = VirtioFeatures.CoreDefaults, int queues = 1, ushort queueMaxSize = 256, ILogger? logger = null, int configSize = 8)
        : base(TestDeviceId, features, memory, Sizes(queues, queueMaxSize), logger)
    {
        _config = new byte[configSize];
        for (int i = 0; i < configSize; i++)
        {
            _config[i] = (byte)(0x10 + i);
        }
    }

    private int _processing;
    private int _overlaps;

    /// <summary>How often two threads were inside queue processing at once (must stay 0).</summary>
    public int ConcurrentProcessing => Volatile.Read(ref _overlaps);

    /// <summary>The managed thread IDs that processed queues, last first.</summary>
    public int LastProcessingThread { get; private set; }

    /// <summary>Heads completed, in order, per queue.</summary>
    public List<(ushort Queue, ushort Head, uint Length)> Completed { get; } = new();

    /// <summary>Interrupts the device decided to raise.</summary>
    public int InterruptsRaised { get; private set; }

    /// <summary>How often <see cref="VirtioDevice.Reset()"/> ran the reset hook.</summary>
    public int ResetHookCalls { get; private set; }

    /// <summary>The byte written into writable buffers.</summary>
    public byte Pattern { get; set; } = 0x5A;

    /// <summary>When set, every completion is published (and may interrupt) on its own, as a device completing requests one by one does.</summary>
    public bool PublishEachCompletion { get; set; }

    /// <summary>When set, chains are popped but not completed (kept in flight).</summary>
    public bool HoldCompletions { get; set; }

    /// <summary>When set, processing a queue throws, as a buggy device would.</summary>
    public bool ThrowWhileProcessing { get; set; }

    /// <summary>Chains popped and held (when <see cref="HoldCompletions"/>).</summary>
    public List<(ushort Queue, ushort Head, uint Writable)> Held { get; } = new();

    /// <summary>Changes the configuration and raises the configuration-change interrupt.</summary>
    public void ChangeConfig(int offset, byte value)
    {
        _config[offset] = value;
        NotifyConfigChanged();
    }

    /// <summary>Completes every held chain and publishes them.</summary>
    public void CompleteHeld()
    {
        foreach (var (queue, head, writable) in Held)
        {
            Queues[queue].AddUsed(head, writable);
            Completed.Add((queue, head, writable));
        }

        Held.Clear();
        for (int i = 0; i < Queues.Count; i++)
        {
            if (PublishUsedAndNotify(Queues[i]))
            {
                InterruptsRaised++;
            }
        }
    }

    /// <inheritdoc />
    public override void ReadConfig(int offset, Span<byte> data) => CopyConfig(_config, offset, data);

    /// <inheritdoc />
    public override void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
        if (offset >= 0 && offset + data.Length <= _config.Length)
        {
            data.CopyTo(_config.AsSpan(offset));
        }
    }

    /// <inheritdoc />
    protected override void ProcessQueue(SplitVirtqueue queue)
    {
        if (Interlocked.Increment(ref _processing) > 1)
        {
            Interlocked.Increment(ref _overlaps);
        }

        try
        {
            LastProcessingThread = Environment.CurrentManagedThreadId;
            if (ThrowWhileProcessing)
            {
                throw new InvalidOperationException("a device bug (RecordingDevice.ThrowWhileProcessing)");
            }

            Drain(queue);
        }
        finally
        {
            Interlocked.Decrement(ref _processing);
        }
    }

    /// <summary>At most this many chains popped per pass, the rest left available (0, the default: no limit).</summary>
    public int MaxPopsPerPass { get; set; }

    private void Drain(SplitVirtqueue queue)
    {
        int popped = 0;
        do
        {
            queue.DisableNotification();
            while ((MaxPopsPerPass == 0 || popped < MaxPopsPerPass) && queue.TryPopChain(out DescriptorChain chain))
            {
                popped++;
                while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
                {
                    if (buffer.IsWriteOnly)
                    {
                        buffer.Span.Fill(Pattern);
                    }
                }

                if (chain.Error != QueueError.None)
                {
                    return; // the queue is broken: the device is in DEVICE_NEEDS_RESET
                }

                if (HoldCompletions)
                {
                    Held.Add((queue.Index, chain.HeadIndex, (uint)chain.WritableLength));
                    continue;
                }

                queue.AddUsed(chain.HeadIndex, (uint)chain.WritableLength);
                Completed.Add((queue.Index, chain.HeadIndex, (uint)chain.WritableLength));
                if (PublishEachCompletion && PublishUsedAndNotify(queue))
                {
                    InterruptsRaised++;
                }
            }

            if (PublishUsedAndNotify(queue))
            {
                InterruptsRaised++;
            }

            if (MaxPopsPerPass != 0 && popped >= MaxPopsPerPass)
            {
                return;
            }
        }
        while (queue.EnableNotification());
    }

    /// <inheritdoc />
    protected override void OnReset()
    {
        ResetHookCalls++;
        Held.Clear();
    }

    private static ushort[] Sizes(int queues, ushort size)
    {
        var sizes = new ushort[queues];
        Array.Fill(sizes, size);
        return sizes;
    }
}
