using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.IO.Pipelines;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Core.Devices;
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
/// A virtio-net receive ring stopped over vhost-user (GET_VRING_BASE) while the device holds chains
/// reserved for a frame that needs more buffers (VIRTIO_NET_F_MRG_RXBUF), then started again, with the
/// library's own front end.
/// </summary>
public sealed class NetRingStopTests
{
    private const int NetHeaderSize = 12;
    private const ushort QueueSize = 64;

    [Fact]
    public void GetVringBase_WithReservedRxChains_ReturnsPromptly_AndTheRestartedRingTakesTheFrame()
    {
        var toGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var fromGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        using var backend = new PipeNetBackend(toGuest.Reader, fromGuest.Writer);
        using var ioThread = new IoThread("net-stop-test");
        ioThread.Start();
        string directory = Directory.CreateTempSubdirectory("vhost-user-net-stop-").FullName;
        string socketPath = Path.Combine(directory, "net.sock");
        var logger = new CapturingLogger();
        using var stop = new CancellationTokenSource();
        using var memory = TestFrontEnd.CreateMemory();
        Task serving;
        using (var server = new VhostUserServer(socketPath, m => new NetDevice(m, [backend], new NetDeviceOptions { ControlQueue = false, QueueSize = QueueSize, IoThreads = [ioThread] }, logger), logger))
        {
            // Long enough that a stop waiting for the reserved chains is plainly seen (the default is 30 s).
            server.DrainTimeout = TimeSpan.FromSeconds(8);
            serving = server.RunAsync(stop.Token);
            List<GuestDriver> drivers = TestFrontEnd.CreateDrivers(memory, 2, QueueSize, eventIdx: false);
            GuestDriver rx = drivers[0];
            using (VhostUserFrontEnd frontEnd = VhostUserFrontEnd.Connect(socketPath))
            {
                VhostUserNegotiation negotiation = frontEnd.Negotiate(VirtioFeatures.Version1 | NetFeatures.MrgRxBuf, VhostUserProtocolFeatures.ReplyAck);
                Assert.NotEqual(0ul, negotiation.Features & NetFeatures.MrgRxBuf);
                frontEnd.SetMemoryTable(memory);
                var fds = new List<EventFd>();
                for (int i = 0; i < drivers.Count; i++)
                {
                    StartRing(frontEnd, drivers[i], (ushort)i, 0, fds);
                }

                // Two 1 KiB buffers for a 3000-byte frame: the device reserves both and waits for a third.
                rx.AddChain(BufferSpec.Write(1024));
                rx.AddChain(BufferSpec.Write(1024));
                rx.Kick();
                fds[0].Signal();
                byte[] frame = Frames(3000);
                NetRoundTripTests.WriteFrame(toGuest.Writer, frame);
                Assert.True(SpinWait.SpinUntil(() => server.Device.Queues[0].InFlightCount == 2, TimeSpan.FromSeconds(10)), "the device did not reserve both chains");

                // GET_VRING_BASE returns without waiting for the reserved chains: they come back unused.
                var watch = Stopwatch.StartNew();
                ushort ringBase = frontEnd.GetVringBase(0);
                watch.Stop();
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), $"GET_VRING_BASE took {watch.Elapsed}");
                Assert.Equal(2, ringBase);
                var returned = new HashSet<ushort>();
                while (rx.TryGetUsed(out ushort head, out uint length))
                {
                    Assert.Equal(0u, length);
                    returned.Add(head);
                }

                Assert.Equal(2, returned.Count);

                // The ring starts again where it stopped, with three new buffers: the frame goes there only.
                StartRing(frontEnd, rx, 0, ringBase, fds);
                var posted = new HashSet<ushort>();
                for (int i = 0; i < 3; i++)
                {
                    posted.Add(rx.AddChain(BufferSpec.Write(1024)));
                }

                rx.Kick();
                fds[^2].Signal();
                var received = new List<byte>();
                int buffers = 0;
                for (int i = 0; i == 0 || i < buffers; i++)
                {
                    (ushort head, uint length) = WaitUsed(rx);
                    Assert.Contains(head, posted);
                    byte[] data = rx.Span(rx.ChainBuffers(head)[0].Address, (int)length).ToArray();
                    if (i == 0)
                    {
                        buffers = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(10));
                        data = data[NetHeaderSize..];
                    }

                    received.AddRange(data);
                }

                Assert.Equal(3, buffers);
                Assert.Equal(frame, received.ToArray());
                Assert.Equal(0, server.Device.Queues[0].StaleCount);
                Assert.True(server.Device.IsLive);
                foreach (EventFd fd in fds)
                {
                    fd.Dispose();
                }
            }

            stop.Cancel();
            Assert.True(WaitStopped(serving));
        }

        Directory.Delete(directory, recursive: true);
    }

    private static bool WaitStopped(Task serving) => serving.Wait(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

    private static void StartRing(VhostUserFrontEnd frontEnd, GuestDriver driver, ushort index, ushort nextAvail, List<EventFd> fds)
    {
        var kick = EventFd.Create();
        var call = EventFd.Create();
        fds.Add(kick);
        fds.Add(call);
        frontEnd.StartVring(index, new VhostUserVringSetup(driver.QueueSize, driver.DescriptorTable, driver.AvailRing, driver.UsedRing, kick, call, nextAvail));
    }

    private static (ushort Head, uint Length) WaitUsed(GuestDriver driver)
    {
        Assert.True(SpinWait.SpinUntil(() => driver.LastUsedIndex != ReadUsedIdx(driver), TimeSpan.FromSeconds(10)), "nothing used in time");
        Assert.True(driver.TryGetUsed(out ushort head, out uint length));
        return (head, length);
    }

    private static ushort ReadUsedIdx(GuestDriver driver) =>
        BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new Virtio.Core.Memory.GuestAddress(driver.UsedRing.Value + 2), 2));

    private static byte[] Frames(int length)
    {
        byte[] frame = BlkServerRig.Pattern(length, 3);
        frame.AsSpan(0, 6).Fill(0xFF); // broadcast: passes any receive filter
        return frame;
    }
}
