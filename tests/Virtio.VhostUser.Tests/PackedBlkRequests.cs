using System.Buffers.Binary;
using System.Collections.Generic;
using System;
using Virtio.Core.Memory;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>virtio-blk requests on a packed ring of a <see cref="PackedGuestDriver"/> served over vhost-user (ring 0).</summary>
internal static class PackedBlkRequests
{
    /// <summary>A posted request: its buffer ID and where its data and status bytes are.</summary>
    internal readonly record struct Posted(ushort Id, GuestAddress Data, GuestAddress Status);

    public static PackedGuestDriver CreateDriver(GuestMemory memory, ushort size) =>
        new(memory, new GuestAddress(0x10000), size, 4ul << 20, 4096, eventIdx: true, indirect: false);

    /// <summary>Posts one request as a direct chain (header, data, status) and kicks.</summary>
    public static Posted Post(TestFrontEnd frontEnd, PackedGuestDriver driver, uint type, ulong sector, byte[]? write, int readLength)
    {
        var specs = new List<BufferSpec> { BufferSpec.Readable(16) };
        if (write is not null)
        {
            specs.Add(BufferSpec.Readable(write.Length));
        }

        if (readLength > 0)
        {
            specs.Add(BufferSpec.Write(readLength));
        }

        specs.Add(BufferSpec.Write(1));
        ushort first = driver.NextAvail;
        ushort id = driver.AddChain([.. specs]);

        // Where each buffer is, read from the descriptors before the device overwrites the head's slot.
        var buffers = new GuestAddress[specs.Count];
        for (int i = 0; i < buffers.Length; i++)
        {
            buffers[i] = new(BinaryPrimitives.ReadUInt64LittleEndian(driver.Span(new GuestAddress(driver.DescriptorRing.Value + (16u * (uint)((first + i) % driver.QueueSize))), 8)));
        }

        // The device reads nothing before the kick: the contents go in after the descriptors.
        Span<byte> header = driver.Span(buffers[0], 16);
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
        write?.CopyTo(driver.Span(buffers[1], write.Length));
        driver.Span(buffers[^1], 1)[0] = 0xFF;
        driver.Kick();
        frontEnd.Kicks[^1].Signal();
        return new Posted(id, buffers.Length > 2 ? buffers[1] : default, buffers[^1]);
    }

    /// <summary>
    /// Waits (bounded) for the next used descriptor and returns its buffer ID: on the ring's call fd
    /// (the driver area is left at ENABLE, so every publish signals it), looking at the ring after each wake-up.
    /// </summary>
    public static ushort WaitUsed(TestFrontEnd frontEnd, PackedGuestDriver driver)
    {
        long deadline = Environment.TickCount64 + 10_000;
        ushort id;
        while (!driver.TryGetUsed(out id, out _))
        {
            long left = deadline - Environment.TickCount64;
            Assert.True(left > 0 && TestFrontEnd.WaitReadable(frontEnd.Calls[^1].Fd, TimeSpan.FromMilliseconds(left)), "nothing used in time");
            frontEnd.Calls[^1].TryConsume(out _);
        }

        return id;
    }

    /// <summary>One request, waited for: its status byte and the data read.</summary>
    public static (byte Status, byte[] Data) Request(TestFrontEnd frontEnd, PackedGuestDriver driver, uint type, ulong sector, byte[]? write, int readLength)
    {
        Posted posted = Post(frontEnd, driver, type, sector, write, readLength);
        Assert.Equal(posted.Id, WaitUsed(frontEnd, driver));
        byte[] data = readLength > 0 ? driver.Span(posted.Data, readLength).ToArray() : [];
        return (driver.Span(posted.Status, 1)[0], data);
    }
}
