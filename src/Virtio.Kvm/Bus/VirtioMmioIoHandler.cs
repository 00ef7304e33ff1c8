using System;
using Virtio.Core.Transport;

namespace Virtio.Kvm.Bus;

/// <summary>Puts a <see cref="VirtioMmioTransport"/> register file on a <see cref="KvmBus"/>.</summary>
public sealed class VirtioMmioIoHandler : IKvmIoHandler
{
    private readonly VirtioMmioTransport _transport;

    /// <summary>Wraps <paramref name="transport"/>.</summary>
    /// <param name="transport">The device's register file.</param>
    public VirtioMmioIoHandler(VirtioMmioTransport transport)
    {
        ArgumentNullException.ThrowIfNull(transport);
        _transport = transport;
    }

    /// <inheritdoc />
    public void Read(ulong offset, Span<byte> data) => _transport.Read(offset, data);

    /// <inheritdoc />
    public void Write(ulong offset, ReadOnlySpan<byte> data) => _transport.Write(offset, data);
}
