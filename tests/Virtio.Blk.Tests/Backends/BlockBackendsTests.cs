using System;
using System.IO;
using System.Linq;
using Microsoft.Extensions.Logging;
using Virtio.Blk.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.Blk.Tests.Backends;

/// <summary>The engine factory: io_uring where it can be set up, the thread engine where not, logged once with the errno.</summary>
public sealed class BlockBackendsTests : IDisposable
{
    private const int EPERM = 1;
    private const int ENOSYS = 38;
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("virtio-blk-engines-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Theory]
    [InlineData(EPERM)]  // kernel.io_uring_disabled=2, or a seccomp filter returning EPERM
    [InlineData(ENOSYS)] // a kernel without io_uring
    public void IoUringSetupFails_FallsBackToThreads_LoggedOnceWithTheErrno(int errno)
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        var logger = new CapturingLogger();
        int probes = 0;

        IBlockBackend backend = BlockBackends.OpenFileProbed(path, new FileBackendOptions { Engine = BlockEngine.IoUring }, null, logger, () => { probes++; return errno; });
        using var disposable = (IDisposable)backend;

        Assert.IsType<FileBlockBackend>(backend);
        Assert.Equal(1, probes);
        var warning = Assert.Single(logger.Entries, e => e.Level == LogLevel.Warning);
        Assert.Contains($"errno {errno}", warning.Message, StringComparison.Ordinal);
        Assert.Contains(path, warning.Message, StringComparison.Ordinal);

        // The fallback serves the disk.
        using var rig = new BlkRig(backend);
        byte[] data = BlkRig.Pattern(4096, 3);
        Assert.Equal(BlockStatus.Ok, rig.Write(0, data).BlockStatus);
        Assert.Equal(data, rig.Read(0, 4096).Data);
        Assert.Single(logger.Entries, e => e.Level == LogLevel.Warning);
    }

    [Fact]
    public void IoUringSetupWorks_GivesTheIoUringBackend()
    {
        Assert.SkipUnless(IoUringBlockBackend.IsSupported(out string? reason), reason ?? string.Empty);
        string path = TestFiles.NewImage(_directory, 1 << 20);
        var logger = new CapturingLogger();

        IBlockBackend backend = BlockBackends.OpenFile(path, new FileBackendOptions { QueueDepth = 8 }, logger: logger);
        using var disposable = (IDisposable)backend;

        IoUringBlockBackend uring = Assert.IsType<IoUringBlockBackend>(backend);
        Assert.Equal(8, uring.QueueDepth);
        Assert.DoesNotContain(logger.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public void ThreadsEngine_DoesNotTryIoUring_AndHonoursReadOnly()
    {
        string path = TestFiles.NewImage(_directory, 64 << 10);

        IBlockBackend backend = BlockBackends.OpenFileProbed(path, new FileBackendOptions { Engine = BlockEngine.Threads, ReadOnly = true }, null, null, () => throw new InvalidOperationException("probed"));
        using var disposable = (IDisposable)backend;

        Assert.IsType<FileBlockBackend>(backend);
        Assert.True(backend.IsReadOnly);
    }

    [Fact]
    public void MissingFile_IsAnIOException_NotAFallback()
    {
        Assert.ThrowsAny<IOException>(() => BlockBackends.OpenFileProbed(Path.Combine(_directory.FullName, "absent.img"), null, null, null, () => EPERM));
        Assert.ThrowsAny<IOException>(() => BlockBackends.OpenFileProbed(Path.Combine(_directory.FullName, "absent.img"), null, null, null, () => 0));
    }
}
