using System;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Queues;

namespace Virtio.Blk;

/// <summary>
/// Turns a gathered descriptor chain into a typed <see cref="BlockRequest"/> or a typed
/// <see cref="BlockRequestError"/> (virtio 1.2 §5.2.6): the status byte, the header read across
/// buffer edges, the data checked against the capacity, the discard / write-zeroes segments checked
/// against the limits. No queue, no backend: bytes in, a request (data segments and ranges in the
/// <see cref="BlockIo"/> given) or an error out. Allocates nothing once the slot has grown.
/// </summary>
/// <remarks>
/// The device makes one and calls <see cref="Parse"/> on a queue's thread, under its gate. Only the
/// capacity changes (<see cref="CapacitySectors"/>, a resize, any thread): each request is checked
/// against one reading of it, so it lies inside the old bounds or the new ones, never a mix.
/// </remarks>
internal sealed class BlockRequestParser
{
    private ulong _capacitySectors;
    private readonly bool _readOnly;
    private readonly bool _mayUnmap;
    private readonly uint _maxDiscardSegments;
    private readonly uint _maxDiscardSectors;
    private readonly uint _maxWriteZeroesSegments;
    private readonly uint _maxWriteZeroesSectors;

    /// <summary>Creates a parser for one disk.</summary>
    /// <param name="capacitySectors">The disk size in 512-byte sectors.</param>
    /// <param name="readOnly">Whether writes, discards and write-zeroes are refused.</param>
    /// <param name="options">The discard and write-zeroes limits.</param>
    /// <param name="mayUnmap">Whether a write-zeroes range with the unmap flag may deallocate (the backend's capability).</param>
    public BlockRequestParser(ulong capacitySectors, bool readOnly, BlockDeviceOptions options, bool mayUnmap)
    {
        _capacitySectors = capacitySectors;
        _readOnly = readOnly;
        _mayUnmap = mayUnmap;
        _maxDiscardSegments = options.MaxDiscardSegments;
        _maxDiscardSectors = options.MaxDiscardSectors;
        _maxWriteZeroesSegments = options.MaxWriteZeroesSegments;
        _maxWriteZeroesSectors = options.MaxWriteZeroesSectors;
    }

    /// <summary>The disk size in 512-byte sectors the next parsed request is checked against. Any thread.</summary>
    public ulong CapacitySectors
    {
        get => Volatile.Read(ref _capacitySectors);
        set => Volatile.Write(ref _capacitySectors, value);
    }

    /// <summary>
    /// Parses the chain in <paramref name="chain"/> (its non-empty buffers, the first
    /// <paramref name="readableCount"/> device-readable, as <see cref="DescriptorChain.TryGather"/>
    /// leaves them) into <paramref name="io"/>. Trims the status byte off the last writable segment in place.
    /// </summary>
    /// <param name="chain">The gathered segments.</param>
    /// <param name="readableCount">How many of them are device-readable.</param>
    /// <param name="negotiated">The driver's features (discard and write-zeroes need theirs).</param>
    /// <param name="io">Receives the data segments and the ranges; cleared by the caller.</param>
    /// <param name="request">The request; on an error, still its <see cref="BlockRequest.StatusAddress"/> (0 for <see cref="BlockRequestError.NoStatusByte"/>).</param>
    /// <returns><see cref="BlockRequestError.None"/>, or why the request is refused.</returns>
    public BlockRequestError Parse(Span<IoSegment> chain, int readableCount, ulong negotiated, BlockIo io, out BlockRequest request)
    {
        request = default;
        ulong capacity = CapacitySectors;
        chain = DropEmpty(chain, ref readableCount);
        Span<IoSegment> writable = chain[readableCount..];
        if (writable.IsEmpty)
        {
            return BlockRequestError.NoStatusByte;
        }

        // The status byte is the last writable byte of the chain (virtio 1.2 §5.2.6).
        IoSegment last = writable[^1];
        nint status = last.Address + last.Length - 1;
        writable[^1] = last.Slice(0, last.Length - 1);
        request = new BlockRequest(default, 0, status, 0);

        var reader = new ChainReader(chain[..readableCount]);
        if (!reader.TryRead(out BlockRequestHeader header))
        {
            return BlockRequestError.HeaderTooShort;
        }

        var type = (BlockRequestType)header.Type;
        request = request with { Type = type, Sector = header.Sector };
        switch (type)
        {
            case BlockRequestType.In:
            {
                var writer = new ChainWriter(writable);
                long bytes = writer.Remaining;
                BlockRequestError error = CheckData(header.Sector, bytes, capacity);
                if (error == BlockRequestError.None)
                {
                    io.SetData(writer.PeekSegments(io.DataBuffer(writable.Length)), bytes);
                    request = request with { DataLength = bytes };
                }

                return error;
            }

            case BlockRequestType.Out:
            {
                if (_readOnly)
                {
                    return BlockRequestError.ReadOnlyDisk;
                }

                long bytes = reader.Remaining;
                BlockRequestError error = CheckData(header.Sector, bytes, capacity);
                if (error == BlockRequestError.None)
                {
                    io.SetData(reader.PeekSegments(io.DataBuffer(readableCount)), bytes);
                    request = request with { DataLength = bytes };
                }

                return error;
            }

            case BlockRequestType.Flush:
                return BlockRequestError.None;

            case BlockRequestType.GetId:
            {
                var writer = new ChainWriter(writable);
                io.SetData(writer.PeekSegments(io.DataBuffer(writable.Length)), writer.Remaining);
                request = request with { DataLength = writer.Remaining };
                return BlockRequestError.None;
            }

            case BlockRequestType.Discard:
            case BlockRequestType.WriteZeroes:
            {
                bool discard = type == BlockRequestType.Discard;
                if ((negotiated & (discard ? BlockFeatures.Discard : BlockFeatures.WriteZeroes)) == 0)
                {
                    return BlockRequestError.FeatureNotNegotiated;
                }

                return _readOnly ? BlockRequestError.ReadOnlyDisk : ParseRanges(ref reader, discard, io, capacity);
            }

            default:
                return BlockRequestError.UnknownType;
        }
    }

    /// <summary>
    /// Moves the non-empty segments to the front, in order, and returns them. TryGather already
    /// drops empty buffers; a cursor must never stand on an empty segment with bytes still ahead.
    /// </summary>
    private static Span<IoSegment> DropEmpty(Span<IoSegment> chain, scoped ref int readableCount)
    {
        int kept = 0;
        int keptReadable = 0;
        for (int i = 0; i < chain.Length; i++)
        {
            if (chain[i].Length == 0)
            {
                continue;
            }

            if (i < readableCount)
            {
                keptReadable++;
            }

            chain[kept++] = chain[i];
        }

        readableCount = keptReadable;
        return chain[..kept];
    }

    private static BlockRequestError CheckData(ulong sector, long bytes, ulong capacity)
    {
        if (bytes % BlockDevice.SectorSize != 0)
        {
            return BlockRequestError.DataNotSectorMultiple;
        }

        return InCapacity(sector, (ulong)bytes / BlockDevice.SectorSize, capacity) ? BlockRequestError.None : BlockRequestError.DataBeyondCapacity;
    }

    private static bool InCapacity(ulong sector, ulong sectors, ulong capacity) => sector <= capacity && sectors <= capacity - sector;

    private BlockRequestError ParseRanges(ref ChainReader reader, bool discard, BlockIo io, ulong capacity)
    {
        long bytes = reader.Remaining;
        if (bytes == 0 || bytes % BlockRangeSegment.Size != 0)
        {
            return BlockRequestError.SegmentListMalformed;
        }

        long count = bytes / BlockRangeSegment.Size;
        if (count > (discard ? _maxDiscardSegments : _maxWriteZeroesSegments))
        {
            return BlockRequestError.TooManySegments;
        }

        uint maxSectors = discard ? _maxDiscardSectors : _maxWriteZeroesSectors;
        for (long i = 0; i < count; i++)
        {
            // Each segment is copied out once (it may straddle buffers; the guest may rewrite it).
            if (!reader.TryRead(out BlockRangeSegment segment))
            {
                return BlockRequestError.SegmentListMalformed; // cannot happen: count * 16 bytes remain
            }

            // virtio 1.2 §5.2.6.2: unknown flags, and unmap on a discard, are UNSUPP; over the limits is IOERR.
            bool unmap = (segment.Flags & BlockRangeSegment.FlagUnmap) != 0;
            if ((segment.Flags & ~BlockRangeSegment.FlagUnmap) != 0 || (discard && unmap))
            {
                return BlockRequestError.SegmentFlagsUnsupported;
            }

            if (segment.Sectors > maxSectors)
            {
                return BlockRequestError.SegmentTooLong;
            }

            if (!InCapacity(segment.Sector, segment.Sectors, capacity))
            {
                return BlockRequestError.SegmentBeyondCapacity;
            }

            io.AddRange(new BlockRange(segment.Sector * BlockDevice.SectorSize, (ulong)segment.Sectors * BlockDevice.SectorSize, _mayUnmap && unmap));
        }

        return BlockRequestError.None;
    }
}
