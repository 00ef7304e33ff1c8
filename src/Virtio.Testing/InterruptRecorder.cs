using System.Collections.Concurrent;
using System.Threading;
using Virtio.Core.Notifications;

namespace Virtio.Testing;

/// <summary>An interrupt line (an <see cref="IGuestNotifier"/>) that records what the device raised.</summary>
/// <remarks>Thread-safe: the device notifies from its own threads while a test reads the counts.</remarks>
public sealed class InterruptRecorder : IGuestNotifier
{
    private int _used;
    private int _config;

    /// <summary>Released once per used-buffer notification, for tests that wait on one.</summary>
    public System.Threading.SemaphoreSlim UsedBufferSignal { get; } = new(0);

    /// <summary>
    /// Whether <see cref="Raised"/> records each notification (the default). Off, the recorder only counts
    /// and signals, so it allocates nothing on the device's thread: for tests that measure allocations there.
    /// </summary>
    public bool KeepLog { get; set; } = true;

    /// <summary>Every notification, in order (while <see cref="KeepLog"/> is on).</summary>
    public ConcurrentQueue<(InterruptReason Reason, ushort Queue)> Raised { get; } = new();

    /// <summary>Used-buffer notifications so far.</summary>
    public int UsedBuffer => Volatile.Read(ref _used);

    /// <summary>Configuration-change notifications so far.</summary>
    public int ConfigurationChange => Volatile.Read(ref _config);

    /// <inheritdoc />
    public void Notify(InterruptReason reason, ushort queueIndex)
    {
        if (KeepLog)
        {
            Raised.Enqueue((reason, queueIndex));
        }

        Interlocked.Increment(ref reason == InterruptReason.UsedBuffer ? ref _used : ref _config);
        if (reason == InterruptReason.UsedBuffer)
        {
            UsedBufferSignal.Release();
        }
    }
}
