using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Testing;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests.FrontEnd;

/// <summary>
/// A virtio-blk driver over the library's <see cref="VhostUserFrontEnd"/>: memfd guest memory, one
/// <see cref="GuestDriver"/> ring, kick and call eventfds, and blk request helpers. Back-end
/// agnostic: the same calls run against <see cref="VhostUserServer"/> and qemu-storage-daemon.
/// </summary>
internal sealed class BlkFrontEndClient : IDisposable
{
    public const uint In = 0;
    public const uint Out = 1;
    public const ulong VersionOne = 1ul << 32;
    public const ushort QueueSize = 64;

    public BlkFrontEndClient(string socketPath, VhostUserProtocolFeatures wanted = VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.MultiQueue)
    {
        Memory = new GuestMemory([GuestMemoryRegion.CreateMemfd(new GuestAddress(0), 16 << 20, "frontend-test-guest")]);
        Driver = new GuestDriver(Memory, new GuestAddress(0x10000), QueueSize, 4 << 20, 4096, eventIdx: false, indirect: false, heapSize: 1 << 20);
        FrontEnd = VhostUserFrontEnd.Connect(socketPath);
        Negotiation = FrontEnd.Negotiate(VersionOne, wanted);
    }

    public GuestMemory Memory { get; }

    public GuestDriver Driver { get; }

    public VhostUserFrontEnd FrontEnd { get; }

    public VhostUserNegotiation Negotiation { get; }

    public EventFd Kick { get; } = EventFd.Create();

    public EventFd Call { get; } = EventFd.Create();

    /// <summary>GET_CONFIG of virtio_blk_config.capacity (offset 0, u64 sectors).</summary>
    public ulong CapacitySectors()
    {
        Span<byte> capacity = stackalloc byte[8];
        FrontEnd.GetConfig(0, capacity);
        return BinaryPrimitives.ReadUInt64LittleEndian(capacity);
    }

    /// <summary>SET_MEM_TABLE and ring 0.</summary>
    public void Start()
    {
        FrontEnd.SetMemoryTable(Memory);
        FrontEnd.StartVring(0, new VhostUserVringSetup(QueueSize, Driver.DescriptorTable, Driver.AvailRing, Driver.UsedRing, Kick, Call));
    }

    /// <summary>Posts one request, kicks (unless <paramref name="kick"/> is false), waits (bounded) for it and returns its status byte and read data.</summary>
    public (byte Status, byte[] Data) Request(uint type, ulong sector, byte[]? writeData = null, int readLength = 0, bool kick = true)
    {
        var (head, buffers) = Post(type, sector, writeData, readLength, kick);
        byte status = WaitUsed(head, buffers);
        byte[] data = readLength > 0 ? Driver.Span(buffers[1].Address, readLength).ToArray() : [];
        return (status, data);
    }

    /// <summary>Posts one request (header, data, status byte) and kicks unless <paramref name="kick"/> is false; returns its head and buffers.</summary>
    public (ushort Head, IReadOnlyList<(GuestAddress Address, int Length, bool Writable)> Buffers) Post(uint type, ulong sector, byte[]? writeData = null, int readLength = 0, bool kick = true)
    {
        BufferSpec[] specs = writeData is not null
            ? [BufferSpec.Readable(16), BufferSpec.Readable(writeData.Length), BufferSpec.Write(1)]
            : [BufferSpec.Readable(16), BufferSpec.Write(readLength), BufferSpec.Write(1)];
        ushort head = Driver.AddChain(specs);
        var buffers = Driver.ChainBuffers(head);
        Span<byte> header = Driver.Span(buffers[0].Address, 16);
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
        writeData?.CopyTo(Driver.Span(buffers[1].Address, writeData.Length));
        Driver.Span(buffers[^1].Address, 1)[0] = 0xFF;
        Driver.Kick(); // publishes avail->idx
        if (kick)
        {
            Kick.Signal();
        }

        return (head, buffers);
    }

    /// <summary>Waits (bounded) for <paramref name="head"/> on the used ring; returns its status byte.</summary>
    public byte WaitUsed(ushort head, IReadOnlyList<(GuestAddress Address, int Length, bool Writable)> buffers)
    {
        long deadline = Environment.TickCount64 + 10_000;
        ushort used;
        while (!Driver.TryGetUsed(out used, out _))
        {
            Assert.True(Environment.TickCount64 < deadline, "the back end used nothing within 10 s");
            Thread.Yield(); // a completion is seen within microseconds of its publish (PollingTests paces on that)
        }

        Assert.Equal(head, used);
        return Driver.Span(buffers[^1].Address, 1)[0];
    }

    public void Dispose()
    {
        FrontEnd.Dispose();
        Kick.Dispose();
        Call.Dispose();
        Driver.Dispose();
        Memory.Dispose();
    }
}
