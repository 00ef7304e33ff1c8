using System.Collections.Concurrent;
using System.Threading;
using Virtio.Core.Transport.Pci;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>An <see cref="IMsiXDelivery"/> that records what the function told it: the embedder's side, minus KVM.</summary>
internal sealed class MsiXRecorder : IMsiXDelivery
{
    private readonly int[] _raised = new int[2048];
    private readonly bool[] _unmasked = new bool[2048];
    private int _raisedWhileMasked;

    public ConcurrentQueue<(ushort Vector, MsiMessage Message, bool Masked)> Configured { get; } = new();

    public ConcurrentQueue<ushort> Raised { get; } = new();

    /// <summary>Released once per raise, for tests that wait on one.</summary>
    public SemaphoreSlim RaiseSignal { get; } = new(0);

    /// <summary>Raises of a vector the embedder was last told is masked (or never told of): the contract says none.</summary>
    public int RaisedWhileMasked => Volatile.Read(ref _raisedWhileMasked);

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

    public void Configure(ushort vector, MsiMessage message, bool masked)
    {
        Volatile.Write(ref _unmasked[vector], !masked);
        Configured.Enqueue((vector, message, masked));
    }

    public void Raise(ushort vector)
    {
        if (!Volatile.Read(ref _unmasked[vector]))
        {
            Interlocked.Increment(ref _raisedWhileMasked);
        }

        Interlocked.Increment(ref _raised[vector]);
        Raised.Enqueue(vector);
        RaiseSignal.Release();
    }
}
