using System;
using System.Buffers.Binary;

namespace Virtio.Core.Queues;

/// <summary>
/// Resubmission on a packed ring: chains an earlier device took and never returned, handed back as
/// copies of their ring descriptors (the ring slots themselves may hold used descriptors by now).
/// </summary>
public sealed partial class SplitVirtqueue
{
    // The copies, chains one after another in the packed descriptor layout, and each chain's count.
    private byte[]? _resubmitDescriptors;
    private ushort[]? _resubmitLengths;
    private int _resubmitDescriptorNext;

    /// <summary>
    /// A packed ring's <see cref="TryResubmit"/>: chains to deliver again before any new descriptor of
    /// the ring, given as copies of their ring descriptors in the packed layout (16 bytes each: address,
    /// length, buffer ID, flags), chains one after another, oldest first. A copy is walked as its ring
    /// descriptors were (indirect tables are read from guest memory again); the buffer ID comes from
    /// each chain's last descriptor, and the used position moves on by the chain's count when it is used.
    /// <see cref="NextAvail"/> does not move: restore the queue past these chains. Call once the queue
    /// is live and before any thread processes it.
    /// </summary>
    /// <param name="descriptors">The copies. Untrusted: see <paramref name="chainLengths"/>.</param>
    /// <param name="chainLengths">Descriptors in each chain. More descriptors than <see cref="Size"/>, a chain
    /// of none, lengths that do not add up to <paramref name="descriptors"/>, a buffer ID not below the
    /// size, or one given twice or already in flight break the queue and nothing is resubmitted.</param>
    /// <param name="error">Why the chains were refused.</param>
    /// <returns>True when every chain will be delivered; false when the queue broke or is not a live packed ring.</returns>
    public bool TryResubmitPacked(ReadOnlySpan<byte> descriptors, ReadOnlySpan<ushort> chainLengths, out QueueError error)
    {
        error = _error;
        if (!_ready || _error != QueueError.None || !_packed)
        {
            error = error == QueueError.None ? QueueError.InvalidResubmission : error;
            return false;
        }

        ushort size = _size;
        error = ValidatePackedResubmission(descriptors, chainLengths, size);
        if (error != QueueError.None)
        {
            MarkBroken(error);
            return false;
        }

        _resubmitDescriptors ??= new byte[MaxSize * PackedRingLayout.DescriptorSize];
        _resubmitLengths ??= new ushort[MaxSize];
        descriptors.CopyTo(_resubmitDescriptors);
        chainLengths.CopyTo(_resubmitLengths);
        _resubmitDescriptorNext = 0;
        _resubmitNext = 0;
        _resubmitCount = chainLengths.Length;
        return true;
    }

    /// <summary>The resubmitted copies, for a <see cref="DescriptorChain"/> walking one of them.</summary>
    internal Span<byte> ResubmittedDescriptors => _resubmitDescriptors;

    private QueueError ValidatePackedResubmission(ReadOnlySpan<byte> descriptors, ReadOnlySpan<ushort> chainLengths, ushort size)
    {
        if (_resubmitNext != _resubmitCount || chainLengths.Length > size || descriptors.Length > size * PackedRingLayout.DescriptorSize)
        {
            return QueueError.InvalidResubmission;
        }

        int total = 0;
        foreach (ushort length in chainLengths)
        {
            if (length == 0)
            {
                return QueueError.InvalidResubmission;
            }

            total += length;
        }

        if (total * PackedRingLayout.DescriptorSize != descriptors.Length)
        {
            return QueueError.InvalidResubmission;
        }

        // Buffer IDs below the size, none twice, none in flight: marked for the check, then unmarked.
        QueueError error = QueueError.None;
        int marked = 0;
        int end = 0;
        for (; marked < chainLengths.Length; marked++)
        {
            end += chainLengths[marked];
            ushort id = IdOfCopy(descriptors, end - 1);
            if (id >= size)
            {
                error = QueueError.InvalidHeadIndex;
                break;
            }

            if (_heads[id] != HeadFree)
            {
                error = QueueError.HeadAlreadyInFlight;
                break;
            }

            _heads[id] = HeadInFlight;
        }

        end = 0;
        for (int i = 0; i < marked; i++)
        {
            end += chainLengths[i];
            _heads[IdOfCopy(descriptors, end - 1)] = HeadFree;
        }

        return error;
    }

    private static ushort IdOfCopy(ReadOnlySpan<byte> descriptors, int index) =>
        BinaryPrimitives.ReadUInt16LittleEndian(descriptors[((index * PackedRingLayout.DescriptorSize) + PackedRingLayout.IdOffset)..]);

    /// <summary>Pops the next resubmitted chain (validated by <see cref="TryResubmitPacked"/>; the IDs are checked again against what popped since).</summary>
    private bool TryPopResubmittedPacked(ushort size, out DescriptorChain chain)
    {
        chain = default;
        ushort slots = _resubmitLengths![_resubmitNext];
        int start = _resubmitDescriptorNext;
        Span<byte> copies = _resubmitDescriptors.AsSpan(start * PackedRingLayout.DescriptorSize, slots * PackedRingLayout.DescriptorSize);
        ushort id = IdOfCopy(copies, slots - 1);
        if (!IsFreeBufferId(id, size))
        {
            return false;
        }

        _resubmitNext++;
        _resubmitDescriptorNext += slots;
        _heads[id] = HeadInFlight;
        _writableCapacity[id] = 0;
        _chainSlots![id] = slots;
        _inFlightCount++;
        _inFlightTracker?.PackedChainTaken(id, copies, default);
        _pinning?.ChainTaken(id);
        chain = new DescriptorChain(this, id, (ushort)start, slots, resubmitted: true);
        return true;
    }
}
