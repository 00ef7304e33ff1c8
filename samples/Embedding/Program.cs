using System;
using System.Buffers.Binary;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport;
using Virtio.Testing;

// Guest memory with one split ring, and a driver that fills it as Linux's virtio_ring does.
using var guest = new GuestDriver(queueSize: 16, memorySize: 16 << 20);
using var disk = new MemoryBlockBackend(capacity: 1 << 20);
using var device = new BlockDevice(guest.Memory, disk); // disposed in reverse: device, disk, guest memory
var transport = new VirtioMmioTransport(device, new CallbackGuestNotifier(static (_, _) => { }));
var mmio = new MmioDriver(transport);
mmio.Initialize(VirtioFeatures.Version1 | BlockFeatures.Flush, guest);

byte[] written = new byte[512];
"hello from virtio-blk"u8.CopyTo(written);
Request(type: 1, sector: 8, written);            // VIRTIO_BLK_T_OUT
byte[] read = Request(type: 0, sector: 8, null); // VIRTIO_BLK_T_IN
bool equal = read.AsSpan().SequenceEqual(written);
Console.WriteLine(equal ? "read back what was written" : "MISMATCH");
return equal ? 0 : 1;

// One request: header, 512 data bytes, status byte; the RAM disk completes it during the notify.
byte[] Request(uint type, ulong sector, byte[]? data)
{
    ushort head = guest.AddChain(BufferSpec.Readable(16), data is null ? BufferSpec.Write(512) : BufferSpec.Readable(512), BufferSpec.Write(1));
    var buffers = guest.ChainBuffers(head);
    Span<byte> header = guest.Span(buffers[0].Address, 16);
    BinaryPrimitives.WriteUInt32LittleEndian(header, type);
    BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
    data?.CopyTo(guest.Span(buffers[1].Address, 512));
    if (guest.Kick())
    {
        mmio.Notify(0);
    }

    if (!guest.TryGetUsed(out ushort used, out _) || used != head || guest.Span(buffers[2].Address, 1)[0] != 0)
    {
        throw new InvalidOperationException("The request did not complete with VIRTIO_BLK_S_OK.");
    }

    return guest.Span(buffers[1].Address, 512).ToArray();
}
