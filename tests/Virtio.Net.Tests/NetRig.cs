using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// A guest with a virtio-net device on virtio-mmio: one <see cref="GuestDriver"/> per queue in shared
/// memory, an I/O thread watching the backends, and helpers to send and receive frames as the guest.
/// </summary>
internal sealed class NetRig : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private const ulong MemorySize = 32 << 20;

    public NetRig(IReadOnlyList<INetBackend> backends, NetDeviceOptions? options = null, ulong? wanted = null, ushort queueSize = 16, int blockSize = 4096)
    {
        Memory = GuestMemory.CreateAnonymous(MemorySize);
        IoThread = new IoThread("net-test");
        IoThread.Start();
        options ??= new NetDeviceOptions();
        if (options.IoThreads.Count == 0)
        {
            options.IoThreads = [IoThread];
        }
        Device = new NetDevice(Memory, backends, options, Logger);
        Transport = new VirtioMmioTransport(Device, Interrupts);
        Mmio = new MmioDriver(Transport);
        int queues = Device.Queues.Count;
        Queues = new GuestDriver[queues];
        for (int i = 0; i < queues; i++)
        {
            Queues[i] = new GuestDriver(Memory, new GuestAddress(0x1000 + ((ulong)i * 0x10000)), queueSize, (2UL << 20) + ((ulong)i * (4UL << 20)), blockSize, eventIdx: false, indirect: false, heapSize: 4UL << 20);
        }

        // The drivers here use neither EVENT_IDX nor indirect tables.
        Features = Mmio.Initialize((wanted ?? ulong.MaxValue) & ~(VirtioFeatures.EventIdx | VirtioFeatures.IndirectDescriptors), Queues);
    }

    public GuestMemory Memory { get; }

    public IoThread IoThread { get; }

    public NetDevice Device { get; }

    public VirtioMmioTransport Transport { get; }

    public MmioDriver Mmio { get; }

    public InterruptRecorder Interrupts { get; } = new();

    public CapturingLogger Logger { get; } = new();

    public GuestDriver[] Queues { get; }

    public ulong Features { get; }

    public GuestDriver Rx => Queues[0];

    public GuestDriver Tx => Queues[1];

    public GuestDriver Control => Queues[^1];

    /// <summary>Sends a frame as Linux does: one chain, header and frame in separate buffers.</summary>
    public ushort Send(ReadOnlySpan<byte> frame, VirtioNetHeader header = default, int txQueue = 1)
    {
        GuestDriver tx = Queues[txQueue];
        ushort head = tx.AddChain(BufferSpec.Readable(VirtioNetHeader.Size), BufferSpec.Readable(frame.Length));
        var buffers = tx.ChainBuffers(head);
        header.Write(tx.Span(buffers[0].Address, VirtioNetHeader.Size));
        frame.CopyTo(tx.Span(buffers[1].Address, frame.Length));
        tx.Kick();
        Mmio.Notify((ushort)txQueue);
        return head;
    }

    /// <summary>Makes <paramref name="count"/> receive buffers of <paramref name="size"/> bytes available and kicks.</summary>
    public void AddRxBuffers(int count, int size, int rxQueue = 0)
    {
        GuestDriver rx = Queues[rxQueue];
        for (int i = 0; i < count; i++)
        {
            rx.AddChain(BufferSpec.Write(size));
        }

        rx.Kick();
        Mmio.Notify((ushort)rxQueue);
    }

    /// <summary>Takes the next used element of a queue, with the bytes of its writable buffers (up to the used length).</summary>
    public bool TryTakeUsed(int queue, out ushort head, out uint length, out byte[] written)
    {
        GuestDriver driver = Queues[queue];
        head = 0;
        length = 0;
        written = [];
        ushort usedIdx = BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new GuestAddress(driver.UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2));
        if (usedIdx == driver.LastUsedIndex)
        {
            return false;
        }

        Span<byte> element = driver.Span(new GuestAddress(driver.UsedRing.Value + (uint)driver.Layout.UsedElementOffset(driver.LastUsedIndex)), SplitRingLayout.UsedElementSize);
        ushort id = (ushort)BinaryPrimitives.ReadUInt32LittleEndian(element);
        uint used = BinaryPrimitives.ReadUInt32LittleEndian(element[4..]);
        var data = new List<byte>();
        foreach (var (address, bufferLength, writable) in driver.ChainBuffers(id))
        {
            if (writable)
            {
                data.AddRange(driver.Span(address, bufferLength).ToArray());
            }
        }

        Assert.True(driver.TryGetUsed(out head, out length));
        written = data.GetRange(0, Math.Min((int)length, data.Count)).ToArray();
        return true;
    }

    /// <summary>Waits (bounded) for the next used element of a queue; interrupts wake the wait.</summary>
    public (ushort Head, uint Length, byte[] Data) WaitUsed(int queue)
    {
        long deadline = Environment.TickCount64 + (long)Timeout.TotalMilliseconds;
        while (true)
        {
            if (TryTakeUsed(queue, out ushort head, out uint length, out byte[] data))
            {
                return (head, length, data);
            }

            long left = deadline - Environment.TickCount64;
            Assert.True(left > 0, $"Queue {queue}: no used buffer within {Timeout}.");
            Interrupts.UsedBufferSignal.Wait(TimeSpan.FromMilliseconds(Math.Min(left, 100)));
        }
    }

    /// <summary>Sends a control command and returns its ack byte.</summary>
    public byte Command(byte commandClass, byte command, ReadOnlySpan<byte> data)
    {
        GuestDriver control = Control;
        ushort head = control.AddChain(BufferSpec.Readable(2 + data.Length), BufferSpec.Write(1));
        var buffers = control.ChainBuffers(head);
        Span<byte> request = control.Span(buffers[0].Address, 2 + data.Length);
        request[0] = commandClass;
        request[1] = command;
        data.CopyTo(request[2..]);
        control.Span(buffers[1].Address, 1)[0] = 0xEE;
        control.Kick();
        Mmio.Notify((ushort)(Device.Queues.Count - 1));
        Assert.True(TryTakeUsed(Device.Queues.Count - 1, out _, out uint length, out byte[] ack), "The control command was not answered synchronously.");
        Assert.Equal(1u, length);
        return ack[0];
    }

    public ReadOnlySpan<byte> ReadConfig(int offset, int length)
    {
        byte[] data = new byte[length];
        Transport.Read((ulong)(VirtioMmioRegister.Config + offset), data);
        return data;
    }

    public void Dispose()
    {
        Device.Dispose();
        IoThread.Dispose();
        Memory.Dispose();
    }

    /// <summary>Waits (bounded) until <paramref name="condition"/> holds, without sleeping.</summary>
    public static void WaitUntil(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, Timeout), $"Timed out waiting until {what}.");
}
