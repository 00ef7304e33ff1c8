using System;
using System.IO;
using Virtio.Fuzz.Seeds;

namespace Virtio.Fuzz;

/// <summary>Writes the committed seed corpora: a few small, valid-ish inputs per target.</summary>
internal static class SeedCorpus
{
    /// <summary>Writes <c>DIR/&lt;target&gt;/&lt;name&gt;</c> for every seed of every target.</summary>
    public static void WriteAll(string directory)
    {
        Write(directory, "ring", "two-chains", RingSeeds.TwoChains());
        Write(directory, "ring", "indirect", RingSeeds.Indirect());
        Write(directory, "ring", "loop", RingSeeds.Loop());
        Write(directory, "ring", "restore-and-resubmit", RingSeeds.RestoreAndResubmit());
        Write(directory, "blk", "write-read", BlkSeeds.WriteRead());
        Write(directory, "blk", "flush-get-id", BlkSeeds.FlushGetId());
        Write(directory, "blk", "discard-write-zeroes", BlkSeeds.DiscardWriteZeroes());
        Write(directory, "net-tx", "plain-frame", NetSeeds.PlainFrame());
        Write(directory, "net-tx", "gso-frames", NetSeeds.GsoFrames());
        Write(directory, "net-ctrl", "commands", NetSeeds.ControlCommands());
        Write(directory, "net-ctrl", "mac-table", NetSeeds.MacTable());
        Write(directory, "net-rx", "mergeable", NetSeeds.ReceiveMergeable());
        Write(directory, "net-rx", "big-buffers", NetSeeds.ReceiveBigBuffers());
        Write(directory, "vhost-user", "handshake", VhostUserSeeds.Handshake());
        Write(directory, "vhost-user", "mem-table", VhostUserSeeds.MemTable());
        Write(directory, "vhost-user", "vring-setup", VhostUserSeeds.VringSetup());
        Write(directory, "vhost-user", "with-fds", VhostUserSeeds.WithFds());
        Write(directory, "mmio", "probe-and-read", MmioSeeds.ProbeAndRead());
        Write(directory, "mmio", "bad-queue-then-reset", MmioSeeds.BadQueueThenReset());
        Write(directory, "mmio", "config", MmioSeeds.Config());
    }

    private static void Write(string directory, string target, string name, byte[] input)
    {
        string folder = Path.Combine(directory, target);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, name), input);
    }
}
