using System;
using System.Collections.Generic;
using System.IO;

namespace Virtio.Bench;

/// <summary>
/// The set-up `compare` and `sweep` share: the scratch directory and image, the back ends on it,
/// and the interleaved rounds over a list of cases. Disposing kills the back ends and removes the scratch.
/// </summary>
internal sealed class Comparison : IDisposable
{
    private readonly Workspace _workspace;
    private readonly ComparisonSettings _settings;

    private Comparison(Workspace workspace, LineUpOptions options, LineUp lineUp, ComparisonSettings settings)
    {
        _workspace = workspace;
        Options = options;
        LineUp = lineUp;
        _settings = settings;
    }

    public LineUpOptions Options { get; }

    public LineUp LineUp { get; }

    /// <summary>One line on what ran: rounds, request size, the disks, how qemu-storage-daemon ran its exports, our --blk.</summary>
    public string Description =>
        $"{_settings.Rounds} rounds of {_settings.Seconds} s, bs {_settings.BlockSize}, one queue, "
        + (_settings.NullDisk ? $"null disks of {_settings.SizeMiB} MiB" : $"image {_workspace.ImageDescription(_settings.SizeMiB)}")
        + $"; ours --blk {Options.OursSpec.Replace(_workspace.Image, "IMAGE", StringComparison.Ordinal)}; qemu-storage-daemon {Options.QsdLoop}; IOPS and back-end CPU us/request are medians of rounds.";

    /// <summary>Starts everything, or returns null (with the reason on stderr) when our daemon's dll is missing.</summary>
    public static Comparison? Start(ComparisonSettings s, bool withThreads)
    {
        string dll = s.DaemonDll ?? DaemonDll.Default();
        if (!File.Exists(dll))
        {
            Console.Error.WriteLine($"our daemon is not at {dll}; build samples/Virtio.VhostUserDaemon or give --daemon-dll.");
            return null;
        }

        Workspace workspace = Workspace.Create(s.Image, s.SizeMiB, needImage: !s.NullDisk);
        try
        {
            var options = new LineUpOptions(dll, workspace.Image, (long)s.SizeMiB << 20, s.NullDisk, withThreads, s.OursKeys, s.QsdIoThreadPollMaxNs);
            return new Comparison(workspace, options, LineUp.Start(options, workspace.Directory), s);
        }
        catch
        {
            workspace.Dispose();
            throw;
        }
    }

    public RoundResults Measure(IReadOnlyList<BenchCase> cases) =>
        InterleavedRounds.Run(LineUp.BackEnds, cases, _settings.Rounds, _settings.Seconds, _settings.BlockSize);

    public void Dispose()
    {
        LineUp.Dispose();
        _workspace.Dispose();
    }
}
