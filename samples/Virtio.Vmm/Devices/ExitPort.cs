using System;
using System.Buffers.Binary;
using Virtio.Kvm;
using Virtio.Kvm.Bus;

namespace Virtio.Vmm.Devices;

/// <summary>
/// The guest's exit port (PIO 0xF4): a 32-bit OUT records the value and pauses the vCPU, which ends
/// the run; the VMM exits with that value.
/// </summary>
internal sealed class ExitPort : IKvmIoHandler
{
    /// <summary>The port.</summary>
    public const ushort Port = 0xF4;

    private readonly KvmVcpu _vcpu;
    private uint? _value;

    public ExitPort(KvmVcpu vcpu) => _vcpu = vcpu;

    /// <summary>The value the guest wrote, once it has.</summary>
    public uint? Value => _value;

    public void Read(ulong offset, Span<byte> data) => data.Clear();

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        uint value = data.Length switch
        {
            >= 4 => BinaryPrimitives.ReadUInt32LittleEndian(data),
            2 => BinaryPrimitives.ReadUInt16LittleEndian(data),
            1 => data[0],
            _ => 0,
        };
        _value ??= value;
        _vcpu.RequestPause();
    }
}
