using System;
using System.Runtime.InteropServices;
using System.Threading;
using Virtio.Core.Queues;

namespace Virtio.Blk.Backends;

/// <summary>
/// One request handed to an <see cref="IBlockBackend"/>: the operation, the byte offset, the guest
/// buffers (<see cref="Segments"/>) or ranges (<see cref="Ranges"/>), and <see cref="Complete"/>.
/// Instances are pooled by the device and reused: a backend must not touch one after completing it.
/// </summary>
/// <remarks>
/// The device fills a <see cref="BlockIo"/> on the queue's processing thread before
/// <see cref="IBlockBackend.Submit"/>; from then until <see cref="Complete"/> the backend may read its
/// members from any thread. Nothing here allocates per request: the segment and range arrays grow
/// to the largest request seen and stay, bounded by <see cref="BlockDeviceOptions.MaxSegments"/> and
/// the discard / write-zeroes segment limits.
/// </remarks>
public sealed class BlockIo
{
    private const int Idle = 0, Submitted = 1, Completed = 2;

    private readonly IBlockIoOwner _owner;
    // The chain as gathered (readable segments first), and the data segments the parser cut from
    // it: the backend's view. Both grow to the longest chain seen and stay.
    private IoSegment[] _chain = new IoSegment[4];
    private IoSegment[] _data = new IoSegment[4];
    private BlockRange[] _ranges = new BlockRange[1];
    private int _dataCount;
    private int _rangeCount;
    private int _state;
    private volatile bool _abandoned;

    internal BlockIo(IBlockIoOwner owner)
    {
        _owner = owner;
    }

    /// <summary>What to do.</summary>
    public BlockOperation Operation { get; internal set; }

    /// <summary>For reads and writes: the disk byte offset (sector × 512) of the first byte.</summary>
    public ulong Offset { get; internal set; }

    /// <summary>For reads and writes: the total bytes of <see cref="Segments"/>.</summary>
    public long Length { get; internal set; }

    /// <summary>For reads and writes: the guest buffers, in order. Empty for other operations.</summary>
    public ReadOnlySpan<BlockSegment> Segments =>
        // BlockSegment and IoSegment are both (nint Address, int Length): the same bytes (checked by a test).
        MemoryMarshal.Cast<IoSegment, BlockSegment>(DataSegments);

    /// <summary>For discard and write-zeroes: the ranges, checked against the capacity. Empty for other operations.</summary>
    public ReadOnlySpan<BlockRange> Ranges => _ranges.AsSpan(0, _rangeCount);

    /// <summary>
    /// True once the device gave up waiting for this request (a reset outlived
    /// <see cref="BlockDeviceOptions.ResetTimeout"/>): the guest may already have reused
    /// <see cref="Segments"/>. A backend checks it before it touches them and, when set, completes
    /// with <see cref="BlockStatus.IoError"/> without any transfer. Any thread.
    /// </summary>
    /// <remarks>
    /// A transfer already started when the flag is raised cannot be recalled; that is why a reset
    /// waits first, and why the timeout should be longer than any single transfer takes.
    /// </remarks>
    public bool IsAbandoned => _abandoned;

    /// <summary>The status the backend reported, once completed.</summary>
    public BlockStatus Status { get; private set; }

    // Device-side state, touched only by the device on its queue's processing thread (or under its lock).
    internal ushort Head;
    internal nint StatusAddress;
    internal uint WrittenOnSuccess;
    internal int Generation;
    internal bool FlushAfterWrite;

    // What the guest asked for, kept for the metrics: a writethrough write turns into its flush
    // (Operation Flush, Length 0) before it completes.
    internal BlockOperation RequestOperation;
    internal long RequestLength;
    internal long SubmittedAt; // Stopwatch timestamp; 0 when the duration histogram was not listened to

    /// <summary>The data segments as Core's type, for a <see cref="ChainReader"/> or <see cref="ChainWriter"/> over them.</summary>
    internal ReadOnlySpan<IoSegment> DataSegments => _data.AsSpan(0, _dataCount);

    /// <summary>Room for the gathered chain: <see cref="DescriptorChain.TryGather"/> fills it.</summary>
    internal Span<IoSegment> ChainBuffer => _chain;

    /// <summary>
    /// Reports the outcome. Call exactly once per submission, from any thread; a second call is
    /// ignored and counted. <see cref="BlockStatus.IoError"/> for any failure (errno, short transfer).
    /// </summary>
    /// <param name="status">The outcome.</param>
    public void Complete(BlockStatus status)
    {
        if (Interlocked.CompareExchange(ref _state, Completed, Submitted) != Submitted)
        {
            if (_owner is BlockQueue queue)
            {
                BlockMetrics.DuplicateCompletions.Add(1, queue.DeviceTag, queue.QueueTag);
            }
            else
            {
                BlockMetrics.DuplicateCompletions.Add(1);
            }

            return;
        }

        Status = status;
        _owner.OnCompleted(this);
    }

    internal bool IsSubmitted => Volatile.Read(ref _state) == Submitted;

    internal void MarkSubmitted() => Volatile.Write(ref _state, Submitted);

    internal void Abandon() => _abandoned = true;

    internal void MarkIdle()
    {
        _abandoned = false;
        Volatile.Write(ref _state, Idle);
    }

    internal void ClearSegments()
    {
        _dataCount = 0;
        _rangeCount = 0;
        Length = 0;
        Offset = 0;
        FlushAfterWrite = false;
        WrittenOnSuccess = 0;
    }

    /// <summary>The room <see cref="ChainBuffer"/> has: at most the device's longest allowed chain.</summary>
    internal int ChainCapacity => _chain.Length;

    /// <summary>
    /// Grows <see cref="ChainBuffer"/> to at least <paramref name="count"/> segments (only while the
    /// longest chain grows), never past <paramref name="limit"/> (the longest chain the device accepts).
    /// </summary>
    internal void EnsureChainCapacity(int count, int limit)
    {
        if (count > _chain.Length)
        {
            _chain = new IoSegment[Math.Min(Math.Max(count, _chain.Length * 2), Math.Max(count, limit))];
        }
    }

    /// <summary>Room for up to <paramref name="count"/> data segments, to be committed with <see cref="SetData"/>.</summary>
    internal Span<IoSegment> DataBuffer(int count)
    {
        if (count > _data.Length)
        {
            _data = new IoSegment[Math.Max(count, _data.Length * 2)];
        }

        return _data.AsSpan(0, count);
    }

    /// <summary>Commits the first <paramref name="count"/> segments of <see cref="DataBuffer"/> as the request's data, <paramref name="length"/> bytes in all.</summary>
    internal void SetData(int count, long length)
    {
        _dataCount = count;
        Length = length;
    }

    internal void AddRange(BlockRange range)
    {
        if (_rangeCount == _ranges.Length)
        {
            Array.Resize(ref _ranges, _ranges.Length * 2);
        }

        _ranges[_rangeCount++] = range;
    }
}
