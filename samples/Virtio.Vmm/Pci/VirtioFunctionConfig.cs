using System;
using Virtio.Core.Transport.Pci;

namespace Virtio.Vmm.Pci;

/// <summary>A virtio-pci function's configuration space on the host bridge.</summary>
internal sealed class VirtioFunctionConfig : IPciConfigSpace
{
    private readonly VirtioPciFunction _function;

    public VirtioFunctionConfig(VirtioPciFunction function) => _function = function;

    public void Read(int offset, Span<byte> data) => _function.ReadConfigSpace(offset, data);

    public void Write(int offset, ReadOnlySpan<byte> data) => _function.WriteConfigSpace(offset, data);
}
