using System;
using System.Buffers;
using System.Buffers.Binary;
using System.IO;
using System.IO.Pipelines;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Core.Threading;
using Virtio.Net;
using Virtio.Net.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

public sealed class NetRoundTripTests
{
    private const int NetHeaderSize = 12;

    [Fact]
    public void Frames_CrossTheServerBothWays_OverThePipeBackend()
    {
        var toGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var fromGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        using var backend = new PipeNetBackend(toGuest.Reader, fromGuest.Writer);
        using var ioThread = new IoThread("net-test");
        ioThread.Start();
        string directory = Directory.CreateTempSubdirectory("vhost-user-net-").FullName;
        string socketPath = Path.Combine(directory, "net.sock");
        var logger = new CapturingLogger();
        using var stop = new CancellationTokenSource();
        using var memory = TestFrontEnd.CreateMemory();
        Task serving;
        using (var server = new VhostUserServer(socketPath, m => new NetDevice(m, [backend], new NetDeviceOptions { ControlQueue = false, QueueSize = 64, IoThreads = [ioThread] }, logger), logger))
        {
            Assert.Equal(2, server.Device.Queues.Count);
            serving = server.RunAsync(stop.Token);
            using (var frontEnd = new TestFrontEnd(socketPath, memory.Regions[0]))
            {
                frontEnd.Start(TestFrontEnd.CreateDrivers(memory, 2));
                GuestDriver rx = frontEnd.Drivers[0];
                GuestDriver tx = frontEnd.Drivers[1];

                // Guest -> backend: a header (all zero: no offloads) and a 60-byte frame on tx.
                byte[] frame = BlkServerRig.Pattern(60, 1);
                ushort head = tx.AddChain(BufferSpec.Readable(NetHeaderSize + frame.Length));
                Span<byte> buffer = tx.Span(tx.ChainBuffers(head)[0].Address, NetHeaderSize + frame.Length);
                buffer.Clear();
                frame.CopyTo(buffer[NetHeaderSize..]);
                tx.Kick();
                frontEnd.Kicks[1].Signal();
                Assert.Equal(frame, ReadFrame(fromGuest.Reader));
                Assert.Equal(head, frontEnd.WaitUsed(1).Head);

                // Backend -> guest: a frame written to the pipe lands in a posted rx buffer.
                ushort rxHead = rx.AddChain(BufferSpec.Write(2048));
                rx.Kick();
                frontEnd.Kicks[0].Signal();
                byte[] incoming = BlkServerRig.Pattern(100, 5);
                WriteFrame(toGuest.Writer, incoming);
                (ushort usedHead, uint length) = frontEnd.WaitUsed(0);
                Assert.Equal(rxHead, usedHead);
                Assert.Equal((uint)(NetHeaderSize + incoming.Length), length);
                Assert.Equal(incoming, rx.Span(new Virtio.Core.Memory.GuestAddress(rx.ChainBuffers(rxHead)[0].Address.Value + NetHeaderSize), incoming.Length).ToArray());
            }

            stop.Cancel();
            Assert.True(WaitStopped(serving));
        }

        Directory.Delete(directory, recursive: true);
    }

    private static bool WaitStopped(Task serving) => serving.Wait(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);

    private static byte[] ReadFrame(PipeReader reader)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            ReadResult result = reader.ReadAsync(cancel.Token).AsTask().GetAwaiter().GetResult();
            ReadOnlySequence<byte> buffer = result.Buffer;
            if (buffer.Length >= 4)
            {
                int size = BinaryPrimitives.ReadInt32LittleEndian(buffer.Slice(0, 4).ToArray());
                if (buffer.Length >= 4 + size)
                {
                    byte[] body = buffer.Slice(4, size).ToArray();
                    reader.AdvanceTo(buffer.Slice(0, 4 + size).End);
                    return body;
                }
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    internal static void WriteFrame(PipeWriter writer, byte[] frame)
    {
        Span<byte> span = writer.GetSpan(4 + frame.Length);
        BinaryPrimitives.WriteInt32LittleEndian(span, frame.Length);
        frame.CopyTo(span[4..]);
        writer.Advance(4 + frame.Length);
        Assert.True(writer.FlushAsync().AsTask().Wait(TimeSpan.FromSeconds(10)));
    }
}
