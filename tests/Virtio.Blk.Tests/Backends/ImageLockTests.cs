using System;
using System.IO;
using System.Linq;
using Virtio.Blk.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.Blk.Tests.Backends;

/// <summary>
/// The image lock of a file disk (<see cref="FileBackendOptions.LockImage"/>), on real files with
/// both engines: a second read-write open fails naming the image and the holder, read-only opens
/// share, a reader and a writer exclude each other, <c>LockImage = false</c> opens beside anyone,
/// and closing the disk releases its lock.
/// </summary>
public sealed class ImageLockTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("virtio-blk-lock-");

    public void Dispose() => _directory.Delete(recursive: true);

    public static TheoryData<BlockEngine> Engines => new(BlockEngine.IoUring, BlockEngine.Threads);

    [Theory]
    [MemberData(nameof(Engines))]
    public void SecondReadWriteOpen_FailsNamingTheImageAndTheHolder(BlockEngine engine)
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using var first = Open(path, engine);

        var e = Assert.Throws<ImageLockedException>(() => Open(path, engine));

        Assert.Equal(path, e.ImagePath);
        // The holder is the first open's description, in this process.
        Assert.Equal(Environment.ProcessId, e.HolderProcessId);
        Assert.False(string.IsNullOrEmpty(e.HolderName));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains($"process {Environment.ProcessId}", e.Message, StringComparison.Ordinal);
        // The refused open closed its descriptor: only the first open's is left on the image.
        Assert.Equal(1, DescriptorsOn(path));
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void LockOff_OpensBesideALockedOpenAndBesideAnotherUnlockedOne_AndSaysSo(BlockEngine engine)
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        var logger = new CapturingLogger();
        using var locked = Open(path, engine);
        using var unlocked = Open(path, engine, lockImage: false, logger: logger);
        using var alsoUnlocked = Open(path, engine, lockImage: false, logger: logger);

        Assert.Equal(2, logger.Entries.Count(entry => entry.EventId.Id == 2111 && entry.Message.Contains(path, StringComparison.Ordinal)));
        // The unlocked opens took nothing: the locked one still excludes a second writer, and no more.
        Assert.Throws<ImageLockedException>(() => Open(path, engine));
    }

    [Fact]
    public void UnlockedOpenFirst_TakesNoLock_SoALockedOneStillOpens()
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using var unlocked = Open(path, BlockEngine.Threads, lockImage: false);
        using var locked = Open(path, BlockEngine.Threads);
        Assert.False(locked.IsReadOnly);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void ReadOnlyOpens_ShareTheImage_ButNotWithAWriter(BlockEngine engine)
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using (var reader = Open(path, engine, readOnly: true))
        using (var secondReader = Open(path, engine, readOnly: true))
        {
            Assert.True(reader.IsReadOnly && secondReader.IsReadOnly);
            var e = Assert.Throws<ImageLockedException>(() => Open(path, engine));
            Assert.Equal(Environment.ProcessId, e.HolderProcessId);
        }

        using var writer = Open(path, engine);
        var readerRefused = Assert.Throws<ImageLockedException>(() => Open(path, engine, readOnly: true));
        Assert.Contains("locked for writing", readerRefused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public void DisposedDisk_ReleasesItsLock(BlockEngine engine)
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        Open(path, engine).Dispose();
        using var second = Open(path, engine);
        Assert.Equal(1UL << 20, second.Capacity);
    }

    [Fact]
    public void PublicConstructors_LockTheImage()
    {
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using var file = new FileBlockBackend(path, workers: 2);
        Assert.Throws<ImageLockedException>(() => new IoUringBlockBackend(path, queueDepth: 4).Dispose());
    }

    /// <summary>This process's descriptors open on <paramref name="path"/> (/proc/self/fd links).</summary>
    private static int DescriptorsOn(string path) =>
        Directory.GetFileSystemEntries("/proc/self/fd").Count(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget == path;
            }
            catch (IOException)
            {
                return false; // closed meanwhile (another test's descriptor)
            }
        });

    private static DisposableBackend Open(string path, BlockEngine engine, bool readOnly = false, bool lockImage = true, CapturingLogger? logger = null) =>
        new(BlockBackends.OpenFileProbed(path, new FileBackendOptions { Engine = engine, ReadOnly = readOnly, LockImage = lockImage, QueueDepth = 4 },
            null, logger, () => 0));

    /// <summary>An opened backend that a using statement disposes.</summary>
    private sealed class DisposableBackend(IBlockBackend backend) : IDisposable
    {
        public bool IsReadOnly => backend.IsReadOnly;

        public ulong Capacity => backend.Capacity;

        public void Dispose() => ((IDisposable)backend).Dispose();
    }
}
