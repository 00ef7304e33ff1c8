using System.Collections.Concurrent;
using System.Threading;
using Virtio.Core.Transport.Pci;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>An <see cref="IMsiXDelivery"/> that records what the function told it: the embedder's side, minus KVM.</summary>
internal sealed class MsiXRecorder : IMsiXDelivery
{
    private readonly int[] _raised = new int[2048];

    public ConcurrentQueue<(ushort Vector, MsiMessage Message, bool Masked)> Configured { get; } = new();

    public ConcurrentQueue<ushort> Raised { get; } = new();

    /// <summary>Released once per raise, for tests that wait on one.</summary>
    public SemaphoreSlim RaiseSignal { get; } = new(0);

    public int RaisedCount(ushort vector) => Volatile.Read(ref _raised[vector]);

    public (MsiMessage Message, bool Masked)? Last(ushort vector)
    {
        (MsiMessage, bool)? last = null;
        foreach (var (v, message, masked) in Configured)
        {
            if (v == vector)
            {
                last = (message, masked);
            }
        }

        return last;
    }

    public void Configure(ushort vector, MsiMessage message, bool masked) => Configured.Enqueue((vector, message, masked));

    public void Raise(ushort vector)
    {
        Interlocked.Increment(ref _raised[vector]);
        Raised.Enqueue(vector);
        RaiseSignal.Release();
    }
}
