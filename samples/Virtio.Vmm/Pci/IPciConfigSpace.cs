using System;

namespace Virtio.Vmm.Pci;

/// <summary>One PCI function's configuration space as the host bridge reaches it: naturally aligned accesses of 1, 2 or 4 bytes at offsets 0 to 255.</summary>
internal interface IPciConfigSpace
{
    /// <summary>Reads <paramref name="data"/>.Length bytes at <paramref name="offset"/>.</summary>
    /// <param name="offset">The register offset.</param>
    /// <param name="data">Receives the little-endian value.</param>
    void Read(int offset, Span<byte> data);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    /// <param name="offset">The register offset.</param>
    /// <param name="data">The little-endian value.</param>
    void Write(int offset, ReadOnlySpan<byte> data);
}
