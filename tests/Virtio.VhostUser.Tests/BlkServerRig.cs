using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using System.Threading;
using System;
using Virtio.Blk.Backends;
using Virtio.Blk;
using Virtio.Core.Memory;
using Virtio.Core.Threading;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// A <see cref="VhostUserServer"/> serving a <see cref="BlockDevice"/> on a socket in a temporary
/// directory, the shared guest memory the test front ends use, and blk request helpers.
/// </summary>
internal sealed class BlkServerRig : IDisposable
{
    public const int Sector = 512;
    private readonly CancellationTokenSource _stop = new();
    private readonly string _directory;
    private readonly Task _serving;

    private readonly bool _ownsMemory;

    public BlkServerRig(int queues = 1, IBlockBackend? backend = null, IReadOnlyList<IoThread>? ioThreads = null, GuestMemory? memory = null, bool packedRing = false)
    {
        _directory = Directory.CreateTempSubdirectory("vhost-user-tests-").FullName;
        SocketPath = Path.Combine(_directory, "blk.sock");
        Backend = backend ?? new MemoryBlockBackend(8 << 20);
        Logger = new CapturingLogger();
        Server = new VhostUserServer(SocketPath, memory => new BlockDevice(memory, Backend, new BlockDeviceOptions { QueueCount = queues, QueueSize = 64, IoThreads = ioThreads, OfferPackedRing = packedRing }, Logger), Logger, ioThreads);
        _serving = Server.RunAsync(_stop.Token);
        _ownsMemory = memory is null;
        Memory = memory ?? TestFrontEnd.CreateMemory();
    }

    public string SocketPath { get; }

    public IBlockBackend Backend { get; }

    public CapturingLogger Logger { get; }

    public VhostUserServer Server { get; }

    public GuestMemory Memory { get; }

    public TestFrontEnd Connect() => new(SocketPath, Memory.Regions[0]);

    /// <summary>Posts one blk request on ring <paramref name="queue"/> and kicks; returns the head.</summary>
    public static ushort Post(TestFrontEnd frontEnd, int queue, uint type, ulong sector, byte[]? writeData = null, int readLength = 0)
    {
        GuestDriver driver = frontEnd.Drivers[queue];
        var specs = new List<BufferSpec> { BufferSpec.Readable(16) };
        if (writeData is not null)
        {
            specs.Add(BufferSpec.Readable(writeData.Length));
        }

        if (readLength > 0)
        {
            specs.Add(BufferSpec.Write(readLength));
        }

        specs.Add(BufferSpec.Write(1));
        ushort head = driver.AddChain([.. specs]);
        var buffers = driver.ChainBuffers(head);
        Span<byte> header = driver.Span(buffers[0].Address, 16);
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
        if (writeData is not null)
        {
            writeData.CopyTo(driver.Span(buffers[1].Address, writeData.Length));
        }

        driver.Span(buffers[^1].Address, 1)[0] = 0xFF;
        driver.Kick();
        frontEnd.Kicks[queue].Signal();
        return head;
    }

    /// <summary>Waits for the request <paramref name="head"/> and returns its status byte and read data.</summary>
    public static (byte Status, byte[] Data) Complete(TestFrontEnd frontEnd, int queue, ushort head, int readLength = 0)
    {
        GuestDriver driver = frontEnd.Drivers[queue];
        var buffers = driver.ChainBuffers(head);
        (ushort used, _) = frontEnd.WaitUsed(queue);
        Assert.Equal(head, used);
        byte status = driver.Span(buffers[^1].Address, 1)[0];
        byte[] data = readLength > 0 ? driver.Span(buffers[^2].Address, readLength).ToArray() : [];
        return (status, data);
    }

    public static byte[] Pattern(int length, byte seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 7 + seed)).ToArray();

    /// <summary>Waits (bounded) until the log has an entry of <paramref name="eventId"/> whose message contains <paramref name="text"/>.</summary>
    public bool WaitForLog(int eventId, string text)
    {
        long deadline = Environment.TickCount64 + 10_000;
        while (Environment.TickCount64 < deadline)
        {
            if (Logger.Entries.Any(e => e.EventId.Id == eventId && e.Message.Contains(text, StringComparison.Ordinal)))
            {
                return true;
            }

            Thread.Sleep(5);
        }

        return false;
    }

    /// <summary>Cancels the server and waits (bounded) until it stopped and removed its socket file.</summary>
    public void Stop()
    {
        _stop.Cancel();
        Assert.True(_serving.Wait(TimeSpan.FromSeconds(30)), "the server did not stop");
        Assert.False(File.Exists(SocketPath), "the socket file was left behind");
    }

    public void Dispose()
    {
        if (Environment.GetEnvironmentVariable("VHOST_TEST_LOG") is not null)
        {
            foreach (var entry in Logger.Entries)
            {
                Console.Error.WriteLine($"{entry.Level} {entry.EventId.Id} {entry.Message}");
            }
        }

        Stop();
        Server.Dispose();
        if (_ownsMemory)
        {
            Memory.Dispose();
        }

        (Backend as IDisposable)?.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
