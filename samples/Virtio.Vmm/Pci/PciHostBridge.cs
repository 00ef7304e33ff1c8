using System;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Virtio.Kvm.Bus;

namespace Virtio.Vmm.Pci;

/// <summary>
/// PCI configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2) on ports 0xCF8 to 0xCFF, bus 0 only.
/// A 32-bit write to 0xCF8 (CONFIG_ADDRESS) selects enable (bit 31), bus (23:16), device (15:11),
/// function (10:8) and register (7:2); a 1-, 2- or 4-byte access at 0xCFC + n (CONFIG_DATA) then reaches
/// byte n of that register. With the enable bit clear, on another bus, or at a device or function
/// nothing answers, a read gives all ones and a write is dropped (a master abort). Other widths at
/// 0xCF8 are not the address register: they read all ones and are ignored.
/// </summary>
/// <remarks>Called on the vCPU thread; the address register is the one vCPU's state.</remarks>
internal sealed class PciHostBridge : IKvmIoHandler
{
    /// <summary>CONFIG_ADDRESS.</summary>
    public const ushort AddressPort = 0xCF8;

    /// <summary>The ports claimed: CONFIG_ADDRESS and CONFIG_DATA, 4 each.</summary>
    public const int Length = 8;

    /// <summary>Device numbers on a bus.</summary>
    public const int Slots = 32;

    private const uint EnableBit = 0x8000_0000;
    private const uint AddressMask = 0x80FF_FFFC; // reserved bits 30:24 and 1:0 read as 0

    private readonly IPciConfigSpace?[] _functions = new IPciConfigSpace?[Slots];
    private readonly ILogger _logger;
    private uint _address;
    private int _loggedOddAccess;

    public PciHostBridge(ILogger logger)
    {
        _logger = logger;
        _functions[0] = new HostBridgeFunction();
    }

    /// <summary>Puts <paramref name="function"/> at device <paramref name="slot"/>, function 0.</summary>
    /// <exception cref="ArgumentException">The slot is 0 (the host bridge), past 31, or taken.</exception>
    public void Attach(int slot, IPciConfigSpace function)
    {
        if (slot is <= 0 or >= Slots || _functions[slot] is not null)
        {
            throw new ArgumentException($"PCI device {slot} is the host bridge, out of range or taken", nameof(slot));
        }

        _functions[slot] = function;
    }

    public void Read(ulong offset, Span<byte> data)
    {
        if (offset < 4)
        {
            if (offset == 0 && data.Length == 4)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(data, _address);
            }
            else
            {
                data.Fill(0xFF);
            }

            return;
        }

        IPciConfigSpace? target = Target((int)offset - 4, data.Length, out int register);
        if (target is null)
        {
            data.Fill(0xFF);
            return;
        }

        if (register % data.Length == 0)
        {
            target.Read(register, data);
            return;
        }

        // An unaligned access inside the dword (bytes 1-2 as a word): byte by byte.
        for (int i = 0; i < data.Length; i++)
        {
            target.Read(register + i, data.Slice(i, 1));
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset < 4)
        {
            if (offset == 0 && data.Length == 4)
            {
                _address = BinaryPrimitives.ReadUInt32LittleEndian(data) & AddressMask;
            }
            else
            {
                OddAccess(offset, data.Length);
            }

            return;
        }

        IPciConfigSpace? target = Target((int)offset - 4, data.Length, out int register);
        if (target is null)
        {
            return;
        }

        if (register % data.Length == 0)
        {
            target.Write(register, data);
            return;
        }

        for (int i = 0; i < data.Length; i++)
        {
            target.Write(register + i, data.Slice(i, 1));
        }
    }

    /// <summary>The function CONFIG_ADDRESS selects and the register byte the access starts at; null for a master abort.</summary>
    private IPciConfigSpace? Target(int byteInData, int width, out int register)
    {
        register = (int)(_address & 0xFC) + byteInData;
        uint address = _address;
        if ((address & EnableBit) == 0 || width is not (1 or 2 or 4) || byteInData + width > 4)
        {
            if (width is not (1 or 2 or 4) || byteInData + width > 4)
            {
                OddAccess((ulong)(4 + byteInData), width);
            }

            return null;
        }

        int bus = (int)(address >> 16) & 0xFF, slot = (int)(address >> 11) & 0x1F, function = (int)(address >> 8) & 0x7;
        return bus == 0 && function == 0 ? _functions[slot] : null;
    }

    private void OddAccess(ulong offset, int width)
    {
        if (System.Threading.Interlocked.Exchange(ref _loggedOddAccess, 1) == 0)
        {
            Log.PciOddAccess(_logger, AddressPort + offset, width);
        }
    }
}
