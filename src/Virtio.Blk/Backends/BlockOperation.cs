namespace Virtio.Blk.Backends;

/// <summary>What a <see cref="BlockIo"/> asks the backend to do.</summary>
public enum BlockOperation
{
    /// <summary>Read <see cref="BlockIo.Length"/> bytes at <see cref="BlockIo.Offset"/> into <see cref="BlockIo.Segments"/>.</summary>
    Read,

    /// <summary>Write <see cref="BlockIo.Segments"/> at <see cref="BlockIo.Offset"/>.</summary>
    Write,

    /// <summary>Make every write completed so far durable (fdatasync).</summary>
    Flush,

    /// <summary>Deallocate <see cref="BlockIo.Ranges"/>; their contents become unspecified (zeroes for the shipped backends).</summary>
    Discard,

    /// <summary>Make <see cref="BlockIo.Ranges"/> read back as zeroes; a range whose <see cref="BlockRange.MayUnmap"/> is set may be deallocated.</summary>
    WriteZeroes,
}
