using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Pipelines;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Net;
using Virtio.Net.Backends;
using Virtio.Testing;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// Dirty logging on virtio-net through the library's front end: a received frame marks its rx buffer's
/// page and the rx used ring's page; the tx ring, whose SET_VRING_ADDR has no VHOST_VRING_F_LOG, has no
/// used-ring writes logged.
/// </summary>
public sealed class DirtyLogNetTests
{
    [Fact]
    public async Task RxFrame_MarksItsBufferAndTheRxUsedRing()
    {
        var toGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var fromGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        using var backend = new PipeNetBackend(toGuest.Reader, fromGuest.Writer);
        using var ioThread = new IoThread("net-dirty-log");
        ioThread.Start();
        string directory = Directory.CreateTempSubdirectory("vhost-user-net-log-").FullName;
        string socketPath = Path.Combine(directory, "net.sock");
        var logger = new CapturingLogger();
        using var stop = new CancellationTokenSource();
        using var memory = TestFrontEnd.CreateMemory();
        using SafeFileHandle log = TestMemfd.Create(DirtyLogRig.LogSize, TestMemfd.QemuSeals, "net-dirty-log");
        using var rxKick = EventFd.Create();
        using var rxCall = EventFd.Create();
        using var txKick = EventFd.Create();
        using var txCall = EventFd.Create();
        Task serving;
        using (var server = new VhostUserServer(socketPath, m => new NetDevice(m, [backend], new NetDeviceOptions { ControlQueue = false, QueueSize = 64, IoThreads = [ioThread] }, logger), logger))
        {
            serving = server.RunAsync(stop.Token);
            List<GuestDriver> drivers = TestFrontEnd.CreateDrivers(memory, 2);
            GuestDriver rx = drivers[0];
            GuestDriver tx = drivers[1];
            using (VhostUserFrontEnd frontEnd = VhostUserFrontEnd.Connect(socketPath))
            {
                VhostUserNegotiation negotiation = frontEnd.Negotiate(1ul << 32, VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.LogSharedMemory | VhostUserProtocolFeatures.MultiQueue);
                frontEnd.SetMemoryTable(memory);
                frontEnd.StartVring(0, new VhostUserVringSetup(64, rx.DescriptorTable, rx.AvailRing, rx.UsedRing, rxKick, rxCall));
                frontEnd.StartVring(1, new VhostUserVringSetup(64, tx.DescriptorTable, tx.AvailRing, tx.UsedRing, txKick, txCall));
                frontEnd.SetLogBase(log, DirtyLogRig.LogSize, 0);
                frontEnd.SetFeatures(negotiation.Features | VhostUserFrontEnd.LogAllBit);
                frontEnd.SetVringAddress(0, rx.DescriptorTable, rx.AvailRing, rx.UsedRing, rx.UsedRing);
                RandomAccess.Write(log, new byte[DirtyLogRig.LogSize], 0);

                ushort head = rx.AddChain(BufferSpec.Write(2048));
                rx.Kick();
                rxKick.Signal();
                NetRoundTripTests.WriteFrame(toGuest.Writer, BlkServerRig.Pattern(100, 5));
                long deadline = Environment.TickCount64 + 10_000;
                ushort used;
                while (!rx.TryGetUsed(out used, out _))
                {
                    Assert.True(Environment.TickCount64 < deadline, "no frame received within 10 s");
                    Thread.Yield();
                }

                Assert.Equal(head, used);
                var expected = new SortedSet<ulong>(DirtyLogRig.Pages(rx.ChainBuffers(head)[0].Address, 2048)) { rx.UsedRing.Value >> 12 };
                Assert.Equal(expected, DirtyLogRig.MarkedPagesIn(log));
            }

            stop.Cancel();
            await serving.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        }

        Directory.Delete(directory, recursive: true);
    }
}
