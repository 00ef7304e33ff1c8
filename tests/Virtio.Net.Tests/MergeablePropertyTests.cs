using System;
using FsCheck;
using Xunit;

namespace Virtio.Net.Tests;

public sealed class MergeablePropertyTests
{
    [FsCheck.Xunit.Property(MaxTest = 40)]
    public bool MergeableRx_AnyFrameAndBufferSize_ReassemblesExactly(PositiveInt frameSeed, PositiveInt bufferSeed)
    {
        int frameLength = 14 + (frameSeed.Get % 9000);
        int bufferSize = 128 + (bufferSeed.Get % (4096 - 128 + 1));
        int chains = (VirtioNetHeader.Size + frameLength + bufferSize - 1) / bufferSize;

        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { QueueSize = 256 }, queueSize: 128);
        rig.AddRxBuffers(chains + 2, bufferSize);
        byte[] frame = Frames.Make(frameLength, seed: (byte)frameSeed.Get);
        pipe.Write(frame);

        byte[] joined = [];
        ushort numBuffers = 0;
        for (int i = 0; i < chains; i++)
        {
            var used = rig.WaitUsed(0);
            if (i == 0)
            {
                numBuffers = VirtioNetHeader.Read(used.Data).NumBuffers;
            }

            if (i < chains - 1 && used.Length != bufferSize)
            {
                return false;
            }

            joined = [.. joined, .. used.Data];
        }

        return numBuffers == chains
            && !rig.TryTakeUsed(0, out _, out _, out _)
            && joined.AsSpan(VirtioNetHeader.Size).SequenceEqual(frame);
    }
}
