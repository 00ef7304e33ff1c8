using System;
using System.IO;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// What every backend over a real file must do, run against each of them (the thread-pool file
/// backend and the io_uring one): round trips, flush, discard and write-zeroes, read-only, a file
/// truncated underneath, O_DIRECT, a full file system, write-zeroes where fallocate cannot zero.
/// </summary>
public abstract class FileBackendContract<TBackend> : IDisposable
    where TBackend : IBlockBackend, IDisposable
{
    /// <summary>Where the test's images live; deleted afterwards.</summary>
    protected DirectoryInfo Directory { get; } = System.IO.Directory.CreateTempSubdirectory("virtio-blk-");

    public void Dispose()
    {
        Directory.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Opens the backend under test over <paramref name="path"/>.</summary>
    protected abstract TBackend Open(string path, bool readOnlyFile = false, bool direct = false);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WriteFlushRead_RoundTripsThroughTheFile(bool withIoThread)
    {
        string path = TestFiles.NewImage(Directory, 1 << 20);
        using var ioThread = new IoThread("blk-backend-test");
        ioThread.Start();
        using var backend = Open(path);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 64, IoThreads = withIoThread ? [ioThread] : null });
        Assert.Equal((ulong)(1 << 20) / 512, rig.Device.CapacitySectors);

        byte[] data = BlkRig.Pattern(64 << 10, 7);
        Completion write = rig.Write(16, data, segment: 1536);
        Assert.Equal(BlockStatus.Ok, write.BlockStatus);
        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
        Assert.Equal(data, TestFiles.Bytes(path, 16 * 512, data.Length));

        Completion read = rig.Read(16, data.Length, segment: 3072);
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal((uint)data.Length + 1, read.Length);
        Assert.Equal(data, read.Data);
    }

    [Fact]
    public void WriteZeroesAndDiscard_ReadBackAsZeroes()
    {
        string path = TestFiles.NewImage(Directory, 1 << 20, fill: 0x5A);
        using var backend = Open(path);
        using var rig = new BlkRig(backend);

        Assert.Equal(BlockStatus.Ok, rig.Ranges(BlockRequestType.WriteZeroes, 0, (8, 8, 0), (64, 16, 1)).BlockStatus);
        Assert.All(TestFiles.Bytes(path, 8 * 512, 4096), b => Assert.Equal(0, b));
        Assert.All(TestFiles.Bytes(path, 64 * 512, 8192), b => Assert.Equal(0, b));
        Assert.All(TestFiles.Bytes(path, 16 * 512, 4096), b => Assert.Equal(0x5A, b));

        Assert.Equal(BlockStatus.Ok, rig.Ranges(BlockRequestType.Discard, 0, (128, 8, 0), (256, 8, 0)).BlockStatus);
        Assert.All(TestFiles.Bytes(path, 128 * 512, 4096), b => Assert.Equal(0, b));
        Assert.All(TestFiles.Bytes(path, 256 * 512, 4096), b => Assert.Equal(0, b));
    }

    [Fact]
    public void WriteZeroes_WhereFallocateCannotZero_WritesTheZeroes_RangeByRange()
    {
        // tmpfs punches holes but refuses FALLOC_FL_ZERO_RANGE (EOPNOTSUPP): a write-zeroes without
        // UNMAP falls back to writing zeroes, in chunks of DiskImage.ZeroBufferSize.
        if (!System.IO.Directory.Exists("/dev/shm"))
        {
            Assert.Skip("No tmpfs at /dev/shm.");
        }

        DirectoryInfo shm = System.IO.Directory.CreateDirectory(Path.Combine("/dev/shm", $"virtio-blk-{Guid.NewGuid():N}"));
        try
        {
            string path = Path.Combine(shm.FullName, "disk.img");
            File.Copy(TestFiles.NewImage(Directory, 1 << 20, fill: 0x5A), path);
            using var backend = Open(path);
            using var rig = new BlkRig(backend);

            // 128 KiB without UNMAP (two chunks of zeroes), 4 KiB with UNMAP (a hole), 4 KiB without.
            Assert.Equal(BlockStatus.Ok, rig.Ranges(BlockRequestType.WriteZeroes, 0, (8, 256, 0), (512, 8, 1), (600, 8, 0)).BlockStatus);
            Assert.All(TestFiles.Bytes(path, 8 * 512, 256 * 512), b => Assert.Equal(0, b));
            Assert.All(TestFiles.Bytes(path, 512 * 512, 4096), b => Assert.Equal(0, b));
            Assert.All(TestFiles.Bytes(path, 600 * 512, 4096), b => Assert.Equal(0, b));
            Assert.All(TestFiles.Bytes(path, 0, 8 * 512), b => Assert.Equal(0x5A, b));
            Assert.All(TestFiles.Bytes(path, 264 * 512, 4096), b => Assert.Equal(0x5A, b));
            Assert.All(TestFiles.Bytes(path, 608 * 512, 4096), b => Assert.Equal(0x5A, b));
            Assert.All(rig.Read(0, 512).Data, b => Assert.Equal(0x5A, b));
            Assert.All(rig.Read(600, 4096).Data, b => Assert.Equal(0, b));
        }
        finally
        {
            shm.Delete(recursive: true);
        }
    }

    [Fact]
    public void WriteZeroes_FallbackOnAFullFileSystem_GetsIoError_DeviceKeepsWorking()
    {
        // A sparse 1 MiB image on a 64 KiB tmpfs: the zeroes written for 512 KiB run out of space.
        string mountPoint = MountTinyTmpfs("tiny-zeroes", out string path);
        try
        {
            using var backend = Open(path);
            using var rig = new BlkRig(backend);
            Assert.Equal(BlockStatus.IoError, rig.Ranges(BlockRequestType.WriteZeroes, 0, (0, 1024, 0)).BlockStatus);

            // A discard there is a hole punched, which frees space; reads and flushes still work.
            Assert.Equal(BlockStatus.Ok, rig.Ranges(BlockRequestType.Discard, 0, (0, 1024, 0)).BlockStatus);
            Completion read = rig.Read(0, 4096);
            Assert.Equal(BlockStatus.Ok, read.BlockStatus);
            Assert.All(read.Data, b => Assert.Equal(0, b));
            Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
        }
        finally
        {
            TestFiles.Run("umount", mountPoint);
        }
    }

    [Fact]
    public void ReadOnlyFile_OffersRo_WritesFail_ReadsWork()
    {
        string path = TestFiles.NewImage(Directory, 64 << 10, fill: 0x21);
        using var backend = Open(path, readOnlyFile: true);
        using var rig = new BlkRig(backend);

        Assert.NotEqual(0UL, rig.Negotiated & BlockFeatures.ReadOnly);
        Assert.Equal(BlockStatus.IoError, rig.Write(0, BlkRig.Pattern(512, 1)).BlockStatus);
        Completion read = rig.Read(0, 512);
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.All(read.Data, b => Assert.Equal(0x21, b));
    }

    [Fact]
    public void Capacity_PartialLastSectorIsNotExposed()
    {
        string path = TestFiles.NewImage(Directory, 1000);
        using var backend = Open(path);
        Assert.Equal(512UL, backend.Capacity);
    }

    [Fact]
    public void FileTruncatedUnderTheDevice_ShortReadGetsIoError()
    {
        string path = TestFiles.NewImage(Directory, 1 << 20, fill: 0x3C);
        using var backend = Open(path);
        using var rig = new BlkRig(backend);
        using (FileStream stream = new(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(6144);
        }

        // Sectors 8..15 straddle the new end of file: preadv stops short, then returns 0.
        Assert.Equal(BlockStatus.IoError, rig.Read(8, 4096).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Read(64, 512).BlockStatus);
        Completion head = rig.Read(0, 4096);
        Assert.Equal(BlockStatus.Ok, head.BlockStatus);
        Assert.All(head.Data, b => Assert.Equal(0x3C, b));
    }

    [Fact]
    public void MissingFile_ThrowsIOException()
    {
        Assert.Throws<IOException>(() => Open(Path.Combine(Directory.FullName, "missing.img")));
    }

    [Fact]
    public void Direct_AlignedRequestsWork()
    {
        string path = TestFiles.NewImage(Directory, 1 << 20);
        TBackend backend;
        try
        {
            backend = Open(path, direct: true);
        }
        catch (IOException exception) when (exception.HResult == 22)
        {
            Assert.Skip("This file system refuses O_DIRECT.");
            return;
        }

        using (backend)
        {
            using var rig = new BlkRig(backend);
            byte[] data = BlkRig.Pattern(8192, 3);

            // GuestDriver blocks are 4 KiB aligned, so the guest buffers satisfy O_DIRECT.
            Assert.Equal(BlockStatus.Ok, rig.Write(8, data).BlockStatus);
            Assert.Equal(data, rig.Read(8, data.Length).Data);
        }
    }

    [Fact]
    public void FullFileSystem_WriteGetsIoError_DeviceKeepsWorking()
    {
        // A sparse 1 MiB image on a 64 KiB file system: writing it all must run out of space.
        string mountPoint = MountTinyTmpfs("tiny", out string path);
        try
        {
            using var backend = Open(path);
            using var rig = new BlkRig(backend);
            int failed = 0;
            for (ulong sector = 0; sector < 2048; sector += 8)
            {
                Completion write = rig.Write(sector, BlkRig.Pattern(4096, (int)sector));
                if (write.BlockStatus == BlockStatus.IoError)
                {
                    failed++;
                }
                else
                {
                    Assert.Equal(BlockStatus.Ok, write.BlockStatus);
                }
            }

            Assert.True(failed > 0, "no write failed on a full file system");
            Completion read = rig.Read(0, 4096);
            Assert.Equal(BlockStatus.Ok, read.BlockStatus);
            Assert.Equal(BlkRig.Pattern(4096, 0), read.Data);
            Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
        }
        finally
        {
            TestFiles.Run("umount", mountPoint);
        }
    }

    /// <summary>Mounts a 64 KiB tmpfs in the test directory with a sparse 1 MiB image on it (<paramref name="image"/>); skips the test where it cannot mount. The caller unmounts it.</summary>
    private string MountTinyTmpfs(string name, out string image)
    {
        string mountPoint = System.IO.Directory.CreateDirectory(Path.Combine(Directory.FullName, name)).FullName;
        if (TestFiles.Run("mount", $"-t tmpfs -o size=64k tmpfs {mountPoint}") != 0)
        {
            Assert.Skip("Cannot mount a tmpfs here (needs root and mount permission).");
        }

        image = Path.Combine(mountPoint, "disk.img");
        using (FileStream stream = File.Create(image))
        {
            stream.SetLength(1 << 20);
        }

        return mountPoint;
    }
}
