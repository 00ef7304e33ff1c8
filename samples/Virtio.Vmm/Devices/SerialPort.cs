using System;
using System.IO;
using Virtio.Kvm.Bus;

namespace Virtio.Vmm.Devices;

/// <summary>
/// COM1 as little as the guest needs (PIO 0x3F8 to 0x3FF): bytes written to the data register go to
/// <see cref="Output"/>, a line at a time; the line status register reads 0x60 (transmitter empty).
/// Every other register reads 0 and ignores writes.
/// </summary>
internal sealed class SerialPort : IKvmIoHandler
{
    /// <summary>COM1's first port.</summary>
    public const ushort Base = 0x3F8;

    /// <summary>The number of ports.</summary>
    public const int Length = 8;

    private const int LineStatus = 5;
    private const byte TransmitterEmpty = 0x60;

    private readonly Stream _output;
    private readonly byte[] _line = new byte[256];
    private int _used;

    public SerialPort(Stream output) => _output = output;

    /// <summary>Where the guest's bytes go.</summary>
    public Stream Output => _output;

    public void Read(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (offset == LineStatus && data.Length > 0)
        {
            data[0] = TransmitterEmpty;
        }
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset != 0 || data.Length == 0)
        {
            return;
        }

        byte value = data[0];
        _line[_used++] = value;
        if (value == (byte)'\n' || _used == _line.Length)
        {
            Flush();
        }
    }

    /// <summary>Writes out a partial line; call it when the guest stops.</summary>
    public void Flush()
    {
        if (_used == 0)
        {
            return;
        }

        try
        {
            _output.Write(_line, 0, _used);
            _output.Flush();
        }
        catch (IOException)
        {
            // stdout closed (a pipe whose reader left): the guest's output has nowhere to go; keep running.
        }

        _used = 0;
    }
}
