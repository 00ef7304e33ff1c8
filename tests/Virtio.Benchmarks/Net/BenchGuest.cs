using System;
using System.Buffers.Binary;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Net;
using Virtio.Testing;

namespace Virtio.Benchmarks.Net;

/// <summary>
/// One guest with a virtio-net device on virtio-mmio, driven synchronously: the I/O thread is never
/// started, so every frame moves on the benchmark thread through QueueNotify (tx) and the rx kick.
/// The guest side uses only allocation-free <see cref="GuestDriver"/> calls. A frame larger than
/// <see cref="SmallBlock"/> bytes is sent as a TSO frame (GSO_TCPV4 header, partial checksum) and received
/// into one buffer per frame (a driver's big-buffer layout), so a 64 KiB frame is one chain each way.
/// </summary>
internal sealed class BenchGuest : IDisposable
{
    public const ushort QueueSize = 256;
    public const int SmallBlock = 2048;

    private readonly IoThread _ioThread = new("net-bench");
    private readonly BufferSpec[] _txSpec;
    private readonly BufferSpec[] _rxSpec;
    private readonly byte[] _txHeader = new byte[VirtioNetHeader.Size];

    public BenchGuest(INetBackend backend, int frameSize)
    {
        int blockSize = frameSize <= SmallBlock - VirtioNetHeader.Size ? SmallBlock : frameSize + SmallBlock;
        _rxSpec = [BufferSpec.Write(blockSize)];
        Tso = frameSize > SmallBlock;
        if (Tso)
        {
            // TCP over IPv4: checksum from the TCP header (offset 34), stored 16 bytes in; 1448-byte segments.
            new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, VirtioNetHeader.GsoTcpV4, 54, 1448, 34, 16, 0).Write(_txHeader);
        }

        Memory = GuestMemory.CreateAnonymous(64 << 20);
        Device = new NetDevice(Memory, [backend], new NetDeviceOptions { QueueSize = QueueSize, IoThreads = [_ioThread] });
        Mmio = new MmioDriver(new VirtioMmioTransport(Device, new NullGuestNotifier()));
        Rx = new GuestDriver(Memory, new GuestAddress(0x1000), QueueSize, 4 << 20, blockSize, eventIdx: false, indirect: false, heapSize: 16 << 20);
        Tx = new GuestDriver(Memory, new GuestAddress(0x11000), QueueSize, 20 << 20, blockSize, eventIdx: false, indirect: false, heapSize: 16 << 20);
        var control = new GuestDriver(Memory, new GuestAddress(0x21000), QueueSize, 36 << 20, blockSize, eventIdx: false, indirect: false, heapSize: 4 << 20);
        Mmio.Initialize(~(VirtioFeatures.EventIdx | VirtioFeatures.IndirectDescriptors), Rx, Tx, control);
        _txSpec = [BufferSpec.Readable(VirtioNetHeader.Size), BufferSpec.Readable(frameSize)];
    }

    public GuestMemory Memory { get; }

    /// <summary>Whether frames go out as TSO frames (a GSO header) rather than plain ones.</summary>
    public bool Tso { get; }

    public NetDevice Device { get; }

    public MmioDriver Mmio { get; }

    public GuestDriver Rx { get; }

    public GuestDriver Tx { get; }

    /// <summary>Posts <paramref name="count"/> receive buffers and kicks the receive queue.</summary>
    public void PostRx(int count)
    {
        for (int i = 0; i < count; i++)
        {
            if (Rx.TryAddChain(_rxSpec) < 0)
            {
                throw new InvalidOperationException("The receive queue is full.");
            }
        }

        Rx.Kick();
        Mmio.Notify(0);
    }

    /// <summary>Queues <paramref name="count"/> frames (a zero header, a zero-filled frame) and kicks the transmit queue.</summary>
    public void Send(int count)
    {
        for (int i = 0; i < count; i++)
        {
            int head = Tx.TryAddChain(_txSpec, useIndirect: false, fill: 0);
            if (head < 0)
            {
                throw new InvalidOperationException("The transmit queue is full.");
            }

            if (Tso)
            {
                // The head descriptor's buffer is the header: read its address from the table (raw, no allocation).
                ulong address = BinaryPrimitives.ReadUInt64LittleEndian(Tx.Span(new GuestAddress(Tx.DescriptorTable.Value + (16u * (uint)head)), 8));
                _txHeader.CopyTo(Tx.Span(new GuestAddress(address), VirtioNetHeader.Size));
            }
        }

        Tx.Kick();
        Mmio.Notify(1);
    }

    /// <summary>Consumes every used element of a queue; returns how many.</summary>
    public static int Drain(GuestDriver driver)
    {
        int count = 0;
        while (driver.TryGetUsed(out _, out _))
        {
            count++;
        }

        return count;
    }

    public void Dispose()
    {
        Device.Dispose();
        _ioThread.Dispose();
        Rx.Dispose();
        Tx.Dispose();
        Memory.Dispose();
    }
}
