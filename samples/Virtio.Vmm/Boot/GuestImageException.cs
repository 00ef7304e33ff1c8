using System;

namespace Virtio.Vmm.Boot;

/// <summary>The guest image is not an ELF file this VMM can load; the message says why.</summary>
internal sealed class GuestImageException : Exception
{
    public GuestImageException(string message)
        : base(message)
    {
    }
}
