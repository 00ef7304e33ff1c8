using System;
using System.Collections.Concurrent;
using System.IO;
using System.Threading;
using Virtio.Blk.Backends;

namespace Virtio.Blk.Tests;

/// <summary>What <see cref="FaultInjectingBlockBackend"/> does with one request.</summary>
public enum Fault
{
    /// <summary>Pass it to the inner backend.</summary>
    None,

    /// <summary>Fail as with EIO, without touching the disk.</summary>
    IoError,

    /// <summary>Fail as with ENOSPC (a write to a full disk).</summary>
    NoSpace,

    /// <summary>A short transfer: half the first buffer moves, then the request fails.</summary>
    ShortTransfer,

    /// <summary>Submit throws.</summary>
    Throw,

    /// <summary>Keep the request until <see cref="FaultInjectingBlockBackend.ReleaseHeld"/>: a delayed completion, or one that arrives after a reset.</summary>
    Hold,

    /// <summary>Pass it to the inner backend from a thread-pool thread (an asynchronous completion).</summary>
    Async,

    /// <summary>Complete it twice (a buggy backend).</summary>
    CompleteTwice,
}

/// <summary>Wraps a backend and injects faults chosen per request by <see cref="Rule"/>; counts operations.</summary>
public sealed class FaultInjectingBlockBackend(IBlockBackend inner) : IBlockBackend
{
    private readonly ConcurrentQueue<BlockIo> _held = new();
    private int _flushes;
    private int _submitted;

    /// <summary>Decides the fault for each request; none when null. Called on the submitting thread.</summary>
    public Func<BlockIo, Fault>? Rule { get; set; }

    /// <summary>Released once per held request.</summary>
    public SemaphoreSlim HeldSignal { get; } = new(0);

    public int HeldCount => _held.Count;

    public int Flushes => Volatile.Read(ref _flushes);

    public int Submitted => Volatile.Read(ref _submitted);

    public ulong Capacity => inner.Capacity;

    public bool IsReadOnly => inner.IsReadOnly;

    public BlockBackendCapabilities Capabilities => inner.Capabilities;

    public void Submit(BlockIo io)
    {
        Interlocked.Increment(ref _submitted);
        if (io.Operation == BlockOperation.Flush)
        {
            Interlocked.Increment(ref _flushes);
        }

        switch (Rule?.Invoke(io) ?? Fault.None)
        {
            case Fault.None:
                inner.Submit(io);
                break;
            case Fault.IoError:
            case Fault.NoSpace:
                io.Complete(BlockStatus.IoError);
                break;
            case Fault.ShortTransfer:
                if (io.Operation == BlockOperation.Read && io.Segments.Length > 0)
                {
                    Span<byte> first = io.Segments[0].AsSpan();
                    first[..(first.Length / 2)].Fill(0xEE);
                }

                io.Complete(BlockStatus.IoError);
                break;
            case Fault.Throw:
                throw new IOException("injected");
            case Fault.Hold:
                _held.Enqueue(io);
                HeldSignal.Release();
                break;
            case Fault.Async:
                ThreadPool.UnsafeQueueUserWorkItem(static state => state.Inner.Submit(state.Io), (Inner: inner, Io: io), preferLocal: false);
                break;
            case Fault.CompleteTwice:
                inner.Submit(io);
                io.Complete(BlockStatus.IoError);
                break;
        }
    }

    /// <summary>Passes every held request to the inner backend (completing them on the calling thread for synchronous backends).</summary>
    /// <returns>How many were released.</returns>
    public int ReleaseHeld()
    {
        int released = 0;
        while (_held.TryDequeue(out BlockIo? io))
        {
            inner.Submit(io);
            released++;
        }

        return released;
    }

    /// <summary>Waits until <paramref name="count"/> requests are held.</summary>
    public void WaitHeld(int count)
    {
        while (HeldCount < count)
        {
            if (!HeldSignal.Wait(TimeSpan.FromSeconds(10)))
            {
                throw new TimeoutException($"Only {HeldCount} of {count} requests were held.");
            }
        }
    }
}
