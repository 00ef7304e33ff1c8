namespace Virtio.Blk;

/// <summary>What each <see cref="BlockRequestError"/> means for the guest.</summary>
internal static class BlockRequestErrors
{
    /// <summary>
    /// The status byte a refused request gets (virtio 1.2 §5.2.6): UNSUPP for what the device does
    /// not do (an unknown type, a feature not negotiated, segment flags it does not know), IOERR for
    /// the rest. <see cref="BlockRequestError.NoStatusByte"/> has no status byte to write.
    /// </summary>
    public static BlockStatus ToStatus(this BlockRequestError error) => error switch
    {
        BlockRequestError.None => BlockStatus.Ok,
        BlockRequestError.UnknownType or BlockRequestError.FeatureNotNegotiated or BlockRequestError.SegmentFlagsUnsupported => BlockStatus.Unsupported,
        _ => BlockStatus.IoError,
    };
}
