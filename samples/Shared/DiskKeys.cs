using System;
using System.Globalization;
using Virtio.Blk.Backends;

namespace Virtio.Samples;

/// <summary>
/// The disk keys the vhost-user daemon's <c>--blk</c> and the sample VMM's <c>--disk</c> share:
/// <c>engine=io_uring|threads</c>, <c>direct=on|off</c>, <c>readonly</c>, <c>lock=on|off</c>, <c>poll-us=N</c>, and the
/// null disk <c>null,size=N[K|M|G|T]</c>. Each caller keeps its own keys (queues, iothreads, serial).
/// </summary>
internal sealed class DiskKeys
{
    /// <summary>What the keys describe: a file with its engine options, or the null disk of <see cref="NullSize"/> bytes.</summary>
    public FileBackendOptions File { get; private set; } = new();

    /// <summary>The path, or null for the null disk.</summary>
    public string? Path { get; private set; }

    /// <summary>The null disk's size in bytes (a multiple of 512); 0 for a file.</summary>
    public ulong NullSize { get; private set; }

    /// <summary>The most microseconds the disk's I/O threads poll before they sleep (<see cref="Virtio.Core.Threading.IoThread.PollingDuration"/>); 0: no polling.</summary>
    public int PollMicroseconds { get; private set; }

    /// <summary>The largest poll-us value taken.</summary>
    public const int MaxPollMicroseconds = 1_000_000;

    /// <summary>One-line help for the shared keys.</summary>
    public const string Help =
        "engine=io_uring|threads (default io_uring; falls back to threads, with a warning, where io_uring_setup fails), " +
        "direct=on|off (O_DIRECT, default off), readonly, " +
        "lock=on|off (default on: an exclusive lock on the image, a shared one when readonly, so a second writer fails to start; " +
        "off takes none, for an image shared on purpose, as by both back ends of a live migration), " +
        "poll-us=N (the disk's I/O threads poll its rings and io_uring completions before sleeping, for an adaptive window of at most N us: " +
        "lower latency for up to a busy core per thread; default 0, no polling); null,size=N[K|M|G|T] is a disk that stores nothing (device-only measurement)";

    /// <summary>Takes the first part (FILE or <c>null</c>); false with a message when it is empty.</summary>
    public bool TryTakeTarget(string first, out string? error)
    {
        error = first.Length == 0 ? "the file name is empty" : null;
        Path = first == "null" ? null : first;
        return error is null;
    }

    /// <summary>Takes one shared key; returns false when <paramref name="part"/> is not one (the caller tries its own), and sets <paramref name="error"/> when it is one but malformed.</summary>
    public bool TryTake(string part, out string? error)
    {
        error = null;
        if (part == "readonly")
        {
            File = With(readOnly: true);
        }
        else if (part.StartsWith("engine=", StringComparison.Ordinal))
        {
            BlockEngine? engine = part[7..] switch { "io_uring" => BlockEngine.IoUring, "threads" => BlockEngine.Threads, _ => null };
            if (engine is null)
            {
                error = $"'{part}': engine is io_uring or threads";
                return true;
            }

            File = With(engine: engine.Value);
        }
        else if (part.StartsWith("direct=", StringComparison.Ordinal) || part.StartsWith("lock=", StringComparison.Ordinal))
        {
            string key = part[..part.IndexOf('=', StringComparison.Ordinal)];
            bool? on = part[(key.Length + 1)..] switch { "on" => true, "off" => false, _ => null };
            if (on is null)
            {
                error = $"'{part}': {key} is on or off";
                return true;
            }

            File = key == "lock" ? With(lockImage: on) : With(direct: on);
        }
        else if (part.StartsWith("poll-us=", StringComparison.Ordinal))
        {
            if (!int.TryParse(part.AsSpan(8), NumberStyles.None, CultureInfo.InvariantCulture, out int us) || us > MaxPollMicroseconds)
            {
                error = $"'{part}': poll-us is 0..{MaxPollMicroseconds} microseconds";
                return true;
            }

            PollMicroseconds = us;
        }
        else if (part.StartsWith("size=", StringComparison.Ordinal))
        {
            if (!TryParseSize(part.AsSpan(5), out ulong size))
            {
                error = $"'{part}': size is a positive multiple of 512 bytes, with an optional K, M, G or T suffix";
                return true;
            }

            NullSize = size;
        }
        else
        {
            return false;
        }

        return true;
    }

    /// <summary>Checks the combination once every part is taken.</summary>
    public bool TryFinish(out string? error)
    {
        error = (Path, NullSize) switch
        {
            (null, 0) => "null needs size=N (for example null,size=1G)",
            (not null, > 0) => "size= is for the null disk only",
            _ => null,
        };
        return error is null;
    }

    /// <summary>Opens the disk: the null backend, or <see cref="BlockBackends.OpenFile"/> with <paramref name="ioThreads"/>.</summary>
    /// <exception cref="System.IO.IOException">The file cannot be opened; a locked image's message names the holder and lock=off.</exception>
    public IBlockBackend Open(System.Collections.Generic.IReadOnlyList<Virtio.Core.Threading.IoThread>? ioThreads, Microsoft.Extensions.Logging.ILogger logger)
    {
        if (Path is null)
        {
            return new NullBlockBackend(NullSize);
        }

        try
        {
            return BlockBackends.OpenFile(Path, File, ioThreads, logger);
        }
        catch (ImageLockedException e)
        {
            throw new ImageLockedException(
                e.Message + "; lock=off opens it without the lock, for an image shared on purpose only (both back ends of a live migration): two writers at once corrupt it", e);
        }
    }

    /// <summary>The file options so far with the ones given changed.</summary>
    private FileBackendOptions With(BlockEngine? engine = null, bool? readOnly = null, bool? direct = null, bool? lockImage = null) => new()
    {
        Engine = engine ?? File.Engine,
        ReadOnly = readOnly ?? File.ReadOnly,
        Direct = direct ?? File.Direct,
        LockImage = lockImage ?? File.LockImage,
        QueueDepth = File.QueueDepth,
    };

    /// <summary>Sets the polling ceiling of <paramref name="ioThreads"/> from poll-us.</summary>
    public void ApplyPolling(System.Collections.Generic.IEnumerable<Virtio.Core.Threading.IoThread> ioThreads)
    {
        foreach (Virtio.Core.Threading.IoThread thread in ioThreads)
        {
            thread.PollingDuration = TimeSpan.FromMicroseconds(PollMicroseconds);
        }
    }

    /// <summary>The engine that serves <paramref name="backend"/>, for the start-up log line.</summary>
    public static string EngineOf(IBlockBackend backend) => backend switch
    {
        IoUringBlockBackend => "io_uring",
        FileBlockBackend => "threads",
        NullBlockBackend => "null",
        _ => backend.GetType().Name,
    };

    private static bool TryParseSize(ReadOnlySpan<char> text, out ulong size)
    {
        size = 0;
        int shift = 0;
        if (text.Length > 0)
        {
            shift = char.ToUpperInvariant(text[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
            if (shift > 0)
            {
                text = text[..^1];
            }
        }

        if (!ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong value) || value == 0 || value > (ulong.MaxValue >> shift))
        {
            return false;
        }

        size = value << shift;
        return size % 512 == 0;
    }
}
