using System;
using System.Globalization;
using System.IO;
using System.Net.NetworkInformation;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Net.Tests.Backends;

/// <summary>
/// The data path through a real TAP interface with the kernel answering pings on the other side
/// (<see cref="TapNamespace"/>), kicks served by the pair's I/O thread as in a VMM with ioeventfds:
/// the fd is non-blocking and in an epoll set, every read and write of it runs on that one I/O thread
/// (no thread per frame, either way), and that thread allocates nothing per frame.
/// </summary>
public sealed class TapDataPathTests
{
    private const int Batch = 32;
    private const int ONonBlock = 0x800; // O_NONBLOCK, 04000 octal on Linux

    private static readonly byte[] HostMac = [0x02, 0x00, 0x00, 0x99, 0x00, 0x01];

    [Fact]
    public void TapFd_IsNonBlocking_AndWatchedByEpoll_WhileTheGuestHasReceiveBuffers()
    {
        using TapNamespace peer = TapNamespace.Create();
        int fd = (int)peer.Tap.ReceiveReadyHandle.DangerousGetHandle();
        Assert.True((FdFlags(fd) & ONonBlock) != 0, $"the tap fd {fd} is blocking (flags 0x{FdFlags(fd):x}): a read with nothing waiting would stall the I/O thread");
        Assert.False(InAnEpollSet(fd), "nothing watches the tap before a device uses it");

        // Buffers first: a frame of the namespace's IPv6 chatter with nowhere to go would stop the watch.
        using var rig = new NetRig([peer.Tap], Options(), queueSize: 64);
        rig.AddRxBuffers(64, 2048);
        Assert.True(InAnEpollSet(fd), "with the device live and receive buffers posted, the tap fd should be in the I/O thread's epoll set");
    }

    [Fact]
    public void PingFlood_EveryTapReadAndWrite_RunsOnThePairsIoThread()
    {
        using var ioThread = new IoThread("net-tap-flood");
        ioThread.Start();
        using TapNamespace peer = TapNamespace.Create(HostMac, Frames.GuestMac);
        var checking = new ThreadCheckingBackend(peer.Tap) { Expected = ioThread };
        using var rig = new NetRig([checking], Options(ioThread), queueSize: 256);
        using var controller = new HostNotifierController(rig.Device, new InProcessNotifierBinding(rig.Transport), [ioThread]);
        rig.AddRxBuffers(128, 2048);

        const int rounds = 40;
        Flood(rig, rounds, identifier: 0x5151);

        Assert.True(checking.OnThread >= 2 * rounds * Batch, $"only {checking.OnThread} backend calls on the I/O thread for {rounds * Batch} pings");
        Assert.Equal(0, checking.OffThread);
    }

    [Fact]
    public void PingFlood_AllocatesNothingPerFrame_OnTheIoThread()
    {
        using var ioThread = new IoThread("net-tap-alloc");
        ioThread.Start();
        using TapNamespace peer = TapNamespace.Create(HostMac, Frames.GuestMac);
        using var rig = new NetRig([peer.Tap], Options(ioThread), queueSize: 256);
        rig.Interrupts.KeepLog = false; // the recorder's log would allocate on the I/O thread, in the measurement
        using var controller = new HostNotifierController(rig.Device, new InProcessNotifierBinding(rig.Transport), [ioThread]);
        rig.AddRxBuffers(128, 2048);

        // Warm up: JIT, first-use statics, the thread's deferred-call state.
        Flood(rig, rounds: 20, identifier: 0x6161);
        long before = AllocatedOn(ioThread);
        const int rounds = 150;
        Flood(rig, rounds, identifier: 0x6262);
        long allocated = AllocatedOn(ioThread) - before;

        long frames = 2L * rounds * Batch; // each ping is a transmitted request and a received reply
        Assert.True(allocated == 0, string.Create(CultureInfo.InvariantCulture, $"the I/O thread allocated {allocated} B over {frames} frames ({(double)allocated / frames:F2} B/frame)"));
    }

    /// <summary>
    /// <paramref name="rounds"/> batches of <see cref="Batch"/> echo requests, each batch sent (one kick
    /// per frame) and its replies taken before the next, with the receive buffers given back per batch.
    /// </summary>
    private static void Flood(NetRig rig, int rounds, ushort identifier)
    {
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < Batch; i++)
            {
                rig.Send(IcmpFrames.EchoRequest(HostMac, identifier, (ushort)((round * Batch) + i), payload: 256));
            }

            for (int i = 0; i < Batch; i++)
            {
                rig.WaitUsed(1); // the transmit chains come back
            }

            int replies = 0;
            int taken = 0;
            while (replies < Batch)
            {
                // Bounded: besides the replies, the namespace sends a little IPv6 chatter.
                Assert.True(taken < Batch + 64, $"round {round}: {replies} of {Batch} replies among {taken} frames");
                byte[] data = rig.WaitUsed(0).Data;
                taken++;
                if (IcmpFrames.IsEchoReply(data.AsSpan(VirtioNetHeader.Size), identifier))
                {
                    replies++;
                }
            }

            rig.AddRxBuffers(taken, 2048);
        }
    }

    private static long AllocatedOn(IoThread thread)
    {
        long bytes = -1;
        Assert.Equal(IoThreadRunResult.Ran, thread.RunAndWait(_ => bytes = GC.GetAllocatedBytesForCurrentThread(), null, NetRig.Timeout));
        return bytes;
    }

    private static int FdFlags(int fd)
    {
        foreach (string line in File.ReadLines($"/proc/self/fdinfo/{fd}"))
        {
            if (line.StartsWith("flags:", StringComparison.Ordinal))
            {
                return Convert.ToInt32(line["flags:".Length..].Trim(), 8);
            }
        }

        throw new InvalidOperationException($"/proc/self/fdinfo/{fd} has no flags line");
    }

    /// <summary>Whether any epoll instance of this process watches <paramref name="fd"/> (its fdinfo lists it as a tfd).</summary>
    private static bool InAnEpollSet(int fd)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(entry).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }

            if (target != "anon_inode:[eventpoll]")
            {
                continue;
            }

            string[] lines;
            try
            {
                lines = File.ReadAllLines("/proc/self/fdinfo/" + Path.GetFileName(entry));
            }
            catch (IOException)
            {
                continue;
            }

            foreach (string line in lines)
            {
                // "tfd:        7 events:       19 data: ..."
                string[] fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length >= 2 && fields[0] == "tfd:" && int.Parse(fields[1], CultureInfo.InvariantCulture) == fd)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static NetDeviceOptions Options(IoThread? ioThread = null)
    {
        var options = new NetDeviceOptions { MacAddress = new PhysicalAddress(Frames.GuestMac), ControlQueue = false };
        if (ioThread is not null)
        {
            options.IoThreads = [ioThread];
        }

        return options;
    }
}
