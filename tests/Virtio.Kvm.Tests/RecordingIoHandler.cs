using System;
using System.Collections.Concurrent;
using Virtio.Kvm.Bus;

namespace Virtio.Kvm.Tests;

/// <summary>Records every access a bus window receives; reads return <see cref="ReadValue"/>.</summary>
internal sealed class RecordingIoHandler : IKvmIoHandler
{
    public ConcurrentQueue<(ulong Offset, byte[] Data, bool IsWrite)> Accesses { get; } = new();

    public Action? OnWrite { get; set; }

    public byte ReadValue { get; set; } = 0xAB;

    public void Read(ulong offset, Span<byte> data)
    {
        data.Fill(ReadValue);
        Accesses.Enqueue((offset, data.ToArray(), false));
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        Accesses.Enqueue((offset, data.ToArray(), true));
        OnWrite?.Invoke();
    }
}
