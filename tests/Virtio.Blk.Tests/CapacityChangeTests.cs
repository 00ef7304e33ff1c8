using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Blk.Backends;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// <see cref="BlockDevice.UpdateCapacity"/>: a disk resized under a running device (docs/blk.md,
/// "Resizing"): the capacity field, the bound requests are checked against, the configuration
/// generation and the configuration-change interrupt move together, and requests racing a resize
/// fall inside the old or the new bounds.
/// </summary>
public sealed class CapacityChangeTests : IDisposable
{
    private const int Sector = BlockDevice.SectorSize;
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("blk-capacity-");

    [Fact]
    public void FileGrown_RefreshAndUpdate_MoveCapacityGenerationAndInterrupt_AndTheNewSectorsServe()
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using var backend = new FileBlockBackend(path);
        using var rig = new BlkRig(backend);
        uint generation = rig.Device.ConfigGeneration;
        Assert.Equal(2048ul, Capacity(rig));
        Assert.Equal(BlockStatus.IoError, rig.Wait(rig.Post(0, 0, 2048, inLength: Sector)).BlockStatus);

        using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            file.SetLength(2 << 20);
        }

        Assert.Equal(2048ul, rig.Device.UpdateCapacity()); // the backend has not looked yet
        Assert.Equal((ulong)(2 << 20), backend.RefreshCapacity());
        Assert.Equal(4096ul, rig.Device.UpdateCapacity());

        Assert.Equal(4096ul, Capacity(rig));
        Assert.Equal(4096ul, rig.Device.CapacitySectors);
        Assert.Equal(generation + 1u, rig.Device.ConfigGeneration);
        Assert.Equal(1, rig.Line.ConfigurationChange);
        byte[] data = BlkRigPattern(Sector);
        Assert.Equal(BlockStatus.Ok, rig.Wait(rig.Post(0, 1, 4095, outData: data)).BlockStatus);
        Assert.Equal(data, rig.Wait(rig.Post(0, 0, 4095, inLength: Sector)).Data);
        Assert.Equal(BlockStatus.IoError, rig.Wait(rig.Post(0, 0, 4096, inLength: Sector)).BlockStatus);

        // The same size again: nothing moves.
        Assert.Equal(4096ul, rig.Device.UpdateCapacity());
        Assert.Equal(generation + 1u, rig.Device.ConfigGeneration);
        Assert.Equal(1, rig.Line.ConfigurationChange);
    }

    [Fact]
    public void Shrunk_RequestsPastTheNewEndFailWithIoErr()
    {
        var backend = new ResizableBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(backend);
        backend.CapacityBytes = 512 << 10;
        Assert.Equal(1024ul, rig.Device.UpdateCapacity());
        Assert.Equal(1024ul, Capacity(rig));
        Assert.Equal(BlockStatus.Ok, rig.Wait(rig.Post(0, 0, 1023, inLength: Sector)).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Wait(rig.Post(0, 0, 1024, inLength: Sector)).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Wait(rig.Post(0, 1, 1000, outData: new byte[64 * Sector])).BlockStatus);
    }

    /// <summary>
    /// One thread flips the capacity between 1 MiB and 2 MiB as fast as it can while 400 reads at random
    /// sectors run: below the small end each succeeds, at or past the large end each fails, between the
    /// two either; the configuration reads one of the two sizes; the generation moved once per change;
    /// once the flipping ends on 2 MiB the upper half serves.
    /// </summary>
    [Fact]
    public async Task RequestsRacingResizes_FallInsideTheOldOrTheNewBounds()
    {
        var backend = new ResizableBackend(new MemoryBlockBackend(2 << 20));
        using var rig = new BlkRig(backend);
        backend.CapacityBytes = 1 << 20;
        rig.Device.UpdateCapacity();
        uint generation = rig.Device.ConfigGeneration;
        int stop = 0;
        int changes = 0;
        Task flipper = Task.Run(() =>
        {
            for (int i = 0; Volatile.Read(ref stop) == 0; i++)
            {
                backend.CapacityBytes = i % 2 == 0 ? 2ul << 20 : 1ul << 20;
                ulong before = rig.Device.CapacitySectors;
                if (rig.Device.UpdateCapacity() != before)
                {
                    changes++;
                }
            }
        }, TestContext.Current.CancellationToken);

        var random = new Random(18);
        var seen = new HashSet<ulong>();
        for (int request = 0; request < 400; request++)
        {
            ulong sector = (ulong)random.Next(0, 5000);
            BlockStatus status = rig.Wait(rig.Post(0, 0, sector, inLength: Sector)).BlockStatus;
            seen.Add(Capacity(rig));
            if (sector < 2048)
            {
                Assert.Equal(BlockStatus.Ok, status);
            }
            else if (sector >= 4096)
            {
                Assert.Equal(BlockStatus.IoError, status);
            }
            else
            {
                Assert.True(status is BlockStatus.Ok or BlockStatus.IoError, $"sector {sector}: {status}");
            }
        }

        Volatile.Write(ref stop, 1);
        await flipper.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Subset(new HashSet<ulong> { 2048, 4096 }, seen);
        Assert.True(changes > 0, "the capacity never changed");
        Assert.Equal(generation + (uint)changes, rig.Device.ConfigGeneration);
        Assert.True(rig.Line.ConfigurationChange > 0, "no configuration-change interrupt"); // the transport may merge pending ones

        backend.CapacityBytes = 2 << 20;
        rig.Device.UpdateCapacity();
        Assert.Equal(BlockStatus.Ok, rig.Wait(rig.Post(0, 0, 3000, inLength: Sector)).BlockStatus);
    }

    public void Dispose() => _directory.Delete(recursive: true);

    private static ulong Capacity(BlkRig rig) => BinaryPrimitives.ReadUInt64LittleEndian(rig.ReadConfig(0, 8));

    private static byte[] BlkRigPattern(int length)
    {
        byte[] data = new byte[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(i * 13 + 5);
        }

        return data;
    }

    /// <summary>A backend whose capacity the test sets, over a memory backend as large as the largest size.</summary>
    private sealed class ResizableBackend(MemoryBlockBackend inner) : IBlockBackend
    {
        private ulong _capacity = inner.Capacity;

        public ulong CapacityBytes
        {
            get => Volatile.Read(ref _capacity);
            set => Volatile.Write(ref _capacity, value);
        }

        public ulong Capacity => CapacityBytes;

        public bool IsReadOnly => inner.IsReadOnly;

        public BlockBackendCapabilities Capabilities => inner.Capabilities;

        public void Submit(BlockIo io) => inner.Submit(io);
    }
}
