using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Blk.Backends;

namespace Virtio.Blk.Tests;

/// <summary>
/// A random mix of reads, writes, flushes, discards, write-zeroes and GET_IDs, posted in batches
/// through GuestDriver and virtio-mmio, leaves the RAM disk with the same bytes as a byte-array
/// model, every read returns the model's bytes at that point, and every request outside the disk
/// gets IOERR. Runs from a fixed seed (see <see cref="BlkPropertyAttribute"/>).
/// </summary>
public sealed class DiskModelProperties
{
    private const int Sectors = 64;
    private const int DiskBytes = Sectors * 512;

    [BlkProperty]
    public Property DiskMatchesByteArrayModel(byte[] script, bool indirect, bool eventIdx)
    {
        using var disk = new MemoryBlockBackend(DiskBytes);
        return Run(script, indirect, eventIdx, disk, () => disk.GetSpan(0, DiskBytes).ToArray()).ToProperty();
    }

    /// <summary>The same over a real file through io_uring, whose transfers, fsyncs and fallocates
    /// complete on the reaper thread, out of order.</summary>
    [IoUringProperty]
    public Property IoUringFileMatchesByteArrayModel(byte[] script, bool indirect, bool eventIdx)
    {
        string path = Path.Combine(Path.GetTempPath(), $"virtio-blk-model-{Guid.NewGuid():N}.img");
        try
        {
            using (FileStream stream = File.Create(path))
            {
                stream.SetLength(DiskBytes);
            }

            using var disk = new IoUringBlockBackend(path, queueDepth: 8);
            return Run(script, indirect, eventIdx, disk, () => File.ReadAllBytes(path)).ToProperty();
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static bool Run(byte[] script, bool indirect, bool eventIdx, IBlockBackend disk, Func<byte[]> contents)
    {
        using var rig = new BlkRig(disk, new BlockDeviceOptions { QueueSize = 64, Serial = "model" }, eventIdx: eventIdx, indirect: indirect);
        var model = new byte[DiskBytes];
        var batch = new List<(Pending Request, BlockStatus Expected, byte[]? Data)>();

        // Requests in flight together may complete in any order (virtio 1.2 §5.2.6 promises none), so
        // one that overlaps an earlier request of the batch, a write on either side, waits for the
        // batch: the model then holds for every backend, also those completing out of order.
        var touched = new List<(ulong Start, ulong End, bool Writes)>();

        bool Flush()
        {
            foreach (var (request, expected, data) in batch)
            {
                Completion result = rig.Wait(request);
                if (result.BlockStatus != expected || (data is not null && !data.AsSpan().SequenceEqual(result.Data)))
                {
                    return false;
                }
            }

            batch.Clear();
            touched.Clear();
            return true;
        }

        for (int i = 0; i + 3 < script.Length; i += 4)
        {
            int kind = script[i] & 7;
            ulong sector = (ulong)(script[i + 1] % (Sectors + 8));
            int count = 1 + (script[i + 2] % 16);
            byte seed = script[i + 3];
            bool inRange = sector + (ulong)count <= Sectors;
            int segment = Math.Min(4096, 512 * (1 + (seed % 8)));
            int offset = (int)sector * 512;
            if (kind is not 4 and not 7)
            {
                bool writes = kind is 0 or 1 or 5 or 6;
                ulong end = sector + (ulong)count;
                if (touched.Exists(t => t.Start < end && sector < t.End && (writes || t.Writes)))
                {
                    rig.Kick(0);
                    if (!Flush())
                    {
                        return false;
                    }
                }

                touched.Add((sector, end, writes));
            }

            int length = count * 512;
            BlockStatus status = inRange ? BlockStatus.Ok : BlockStatus.IoError;

            if (rig.Guests[0].NumFree < 20)
            {
                rig.Kick(0);
                if (!Flush())
                {
                    return false;
                }
            }

            switch (kind)
            {
                case 0:
                case 1:
                    byte[] data = BlkRig.Pattern(length, seed);
                    if (inRange)
                    {
                        data.CopyTo(model, offset);
                    }

                    batch.Add((rig.Post(0, (uint)BlockRequestType.Out, sector, data, segment: segment, kick: false), status, null));
                    break;
                case 2:
                case 3:
                    byte[]? expected = inRange ? model.AsSpan(offset, length).ToArray() : null;
                    batch.Add((rig.Post(0, (uint)BlockRequestType.In, sector, inLength: length, segment: segment, kick: false), status, expected));
                    break;
                case 4:
                    batch.Add((rig.Post(0, (uint)BlockRequestType.Flush, 0, kick: false), BlockStatus.Ok, null));
                    break;
                case 5:
                case 6:
                    uint flags = kind == 6 ? (uint)(seed & 1) : 0;
                    if (inRange)
                    {
                        Array.Clear(model, offset, length);
                    }

                    var type = kind == 5 ? BlockRequestType.Discard : BlockRequestType.WriteZeroes;
                    batch.Add((rig.Post(0, (uint)type, 0, BlkRig.Segments((sector, (uint)count, flags)), kick: false), status, null));
                    break;
                default:
                    byte[] id = new byte[20];
                    Encoding.ASCII.GetBytes("model").CopyTo(id, 0);
                    batch.Add((rig.Post(0, (uint)BlockRequestType.GetId, 0, inLength: 20, kick: false), BlockStatus.Ok, id));
                    break;
            }

            if ((script[i] & 0x80) != 0)
            {
                rig.Kick(0);
                if (!Flush())
                {
                    return false;
                }
            }
        }

        rig.Kick(0);
        return Flush() && contents().AsSpan().SequenceEqual(model) && rig.Device.InFlight == 0;
    }
}
