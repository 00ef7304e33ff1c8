namespace Virtio.Blk;

/// <summary>
/// Why <see cref="BlockRequestParser"/> refused a chain. <see cref="BlockRequestErrors.ToStatus"/>
/// gives the status byte each one earns (virtio 1.2 §5.2.6); <see cref="NoStatusByte"/> earns none.
/// </summary>
internal enum BlockRequestError : byte
{
    /// <summary>The chain is a well-formed request.</summary>
    None,

    /// <summary>No device-writable byte: nowhere to put a status. Returned with used length 0.</summary>
    NoStatusByte,

    /// <summary>Fewer than 16 device-readable bytes: no whole request header.</summary>
    HeaderTooShort,

    /// <summary>A type the device does not know.</summary>
    UnknownType,

    /// <summary>A write, discard or write-zeroes on a read-only disk.</summary>
    ReadOnlyDisk,

    /// <summary>A read or write whose data is not a whole number of 512-byte sectors.</summary>
    DataNotSectorMultiple,

    /// <summary>A read or write that ends past the disk's capacity.</summary>
    DataBeyondCapacity,

    /// <summary>A discard or write-zeroes whose feature the driver did not negotiate.</summary>
    FeatureNotNegotiated,

    /// <summary>A discard or write-zeroes whose segment list is empty or not whole 16-byte segments.</summary>
    SegmentListMalformed,

    /// <summary>More discard or write-zeroes segments than <c>max_discard_seg</c> / <c>max_write_zeroes_seg</c>.</summary>
    TooManySegments,

    /// <summary>A segment with unknown flags, or the unmap flag on a discard.</summary>
    SegmentFlagsUnsupported,

    /// <summary>A segment longer than <c>max_discard_sectors</c> / <c>max_write_zeroes_sectors</c>.</summary>
    SegmentTooLong,

    /// <summary>A segment that ends past the disk's capacity.</summary>
    SegmentBeyondCapacity,

    /// <summary>More buffers than <c>seg_max</c> + 2 (header and status): <see cref="BlockDeviceOptions.MaxSegments"/>.</summary>
    ChainTooLong,
}
