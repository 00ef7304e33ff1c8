namespace Virtio.Testing;

/// <summary>One buffer the guest driver puts in a chain: its length and whether the device may write it.</summary>
/// <param name="Length">Bytes; at most the driver's block size.</param>
/// <param name="Writable">True for a device-writable buffer.</param>
public readonly record struct BufferSpec(int Length, bool Writable)
{
    /// <summary>A device-readable buffer.</summary>
    /// <param name="length">Bytes.</param>
    /// <returns>The buffer.</returns>
    public static BufferSpec Readable(int length) => new(length, false);

    /// <summary>A device-writable buffer.</summary>
    /// <param name="length">Bytes.</param>
    /// <returns>The buffer.</returns>
    public static BufferSpec Write(int length) => new(length, true);
}
