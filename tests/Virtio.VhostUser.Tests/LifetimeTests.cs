using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// The security review's input for in-flight memory lifetime: reads held at the backend, then a
/// head index past the queue size on the same ring (the queue breaks with the reads in flight),
/// then SET_MEM_TABLE with a new memfd, or a disconnect; the reads are released afterwards. No
/// write may reach the old mapping once it is unmapped, nor the new one; the old mapping goes only
/// after the reads completed; the broken ring's late completions complete no head.
/// </summary>
/// <remarks>
/// The server runs in this process, so the test maps the old memfd itself (the rig's memory, named
/// uniquely) and counts the server's mapping of it in /proc/self/maps.
/// </remarks>
public sealed class LifetimeTests
{
    private const uint In = 0;
    private const uint NeedReply = 1u << 3;
    private const int ReadLength = 4096;
    private const byte Untouched = 0xEE;
    private const byte NewMemoryFill = 0x5A;

    [Fact]
    public void SetMemTable_WithReadsInFlightOnABrokenQueue_WaitsForThem_AndWritesNothingAfterTheCommit()
    {
        using var scenario = new HeldReads(breakRing: true);
        using GuestMemoryRegion fresh = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), TestFrontEnd.MemorySize, $"lifetime-new-{Guid.NewGuid():N}");
        Bytes(fresh).Fill(NewMemoryFill);

        SendSetMemTable(scenario.FrontEnd, fresh);

        // The drain waits for the reads (the broken queue's included): nothing committed, nothing unmapped.
        Assert.True(scenario.Rig.WaitForLog(4021, "waiting for 2 request(s)"), "the drain did not wait for the reads");
        Assert.Equal(1, scenario.Rig.Logger.Entries.Count(e => e.EventId.Id == 4011));
        Assert.Equal(2, scenario.OldMappings());
        scenario.AssertReadsNotDone();

        scenario.Holding.Release();
        AssertCommitted(scenario.FrontEnd);

        // The reads completed into the old mapping before it went, and it went (after them).
        scenario.AssertReadsDoneBeforeUnmap();
        byte[] oldAfterCommit = scenario.ReadAreas();
        scenario.AssertNothingLeftToWrite();
        Assert.Equal(oldAfterCommit, scenario.ReadAreas()); // not written after the commit
        Assert.True(Bytes(fresh).IndexOfAnyExcept(NewMemoryFill) < 0, "the new memory was written");
        scenario.AssertNoHeadCompleted();
    }

    [Fact]
    public void DrainThatGivesUp_KeepsTheOldTableMapped_UntilItsRequestsReturn_AndDropsTheirCompletions()
    {
        // A backend that does not answer within the drain's bound: SET_MEM_TABLE goes on without
        // it; the request keeps the old mapping and completes no head of the restarted ring.
        using var scenario = new HeldReads(breakRing: false, drainTimeout: TimeSpan.FromMilliseconds(300));
        using GuestMemoryRegion fresh = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), TestFrontEnd.MemorySize, $"lifetime-new-{Guid.NewGuid():N}");
        Bytes(scenario.OldRegion).CopyTo(Bytes(fresh)); // the same guest RAM, shared by a new fd

        SetMemTable(scenario.FrontEnd, fresh);
        Assert.Single(scenario.Rig.Logger.Entries, e => e.EventId.Id == 4008);
        Assert.Single(scenario.Rig.Logger.Entries, e => e.EventId.Id == 4018 && e.Message.Contains("generation 1 retired with 2 request(s)", StringComparison.Ordinal));
        Assert.Equal(2, scenario.OldMappings()); // kept for the requests: never freed under them
        Assert.Equal(2, scenario.Queue.StaleCount); // the ring restarted on the new table
        byte[] newMemory = Bytes(fresh).ToArray();

        scenario.Holding.Release();
        Assert.True(scenario.Rig.WaitForLog(4019, "generation 1 released, 1 region(s) unmapped"));
        Assert.Equal(1, scenario.OldMappings());
        Assert.Equal(0, scenario.Queue.StaleCount);
        Assert.Single(scenario.Rig.Logger.Entries, e => e.EventId.Id == 1003); // two dropped, logged once
        scenario.AssertNothingLeftToWrite();
        Assert.True(Bytes(fresh).SequenceEqual(newMemory), "a stale completion wrote into the new memory");
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(Bytes(fresh)[(int)(scenario.Driver.UsedRing.Value + 2)..]));
    }

    [Fact]
    public void GetVringBase_OnABrokenQueueWithReadsInFlight_AnswersOnlyAfterThem()
    {
        using var scenario = new HeldReads(breakRing: true);

        scenario.FrontEnd.SendState(11, 0, 0); // GET_VRING_BASE
        Assert.True(scenario.Rig.WaitForLog(4021, "waiting for 2 request(s)"), "the stop did not wait for the reads");
        Assert.False(scenario.Rig.Logger.Entries.Any(e => e.EventId.Id == 4007), "the ring stopped with reads in flight");
        scenario.AssertReadsNotDone();

        scenario.Holding.Release();
        byte[] reply = scenario.FrontEnd.Receive(11);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(4))); // the two reads; the bad head moved nothing
        Assert.Equal(0, scenario.Queue.InFlightCount);
        scenario.AssertNoHeadCompleted();
    }

    [Fact]
    public void Disconnect_WithReadsInFlightOnABrokenQueue_UnmapsOnlyAfterThem()
    {
        using var scenario = new HeldReads(breakRing: true);

        scenario.FrontEnd.Dispose(); // the session stops the rings, then unmaps
        Assert.True(scenario.Rig.WaitForLog(4021, "waiting for 2 request(s)"), "the disconnect did not wait for the reads");
        Assert.Equal(2, scenario.OldMappings());
        Assert.False(scenario.Rig.Logger.Entries.Any(e => e.EventId.Id == 4003), "the session ended with reads in flight");
        scenario.AssertReadsNotDone();

        scenario.Holding.Release();
        Assert.True(scenario.Rig.WaitForLog(4003, "disconnected"));
        scenario.AssertReadsDoneBeforeUnmap();
        byte[] oldAfterUnmap = scenario.ReadAreas();
        scenario.AssertNothingLeftToWrite();
        Assert.Equal(oldAfterUnmap, scenario.ReadAreas());
        scenario.AssertNoHeadCompleted();
    }

    /// <summary>SET_MEM_TABLE of all of <paramref name="memory"/> at guest 0, asking for REPLY_ACK.</summary>
    private static void SendSetMemTable(TestFrontEnd frontEnd, GuestMemoryRegion memory)
    {
        byte[] table = new byte[8 + 32];
        BinaryPrimitives.WriteUInt32LittleEndian(table, 1);
        TestFrontEnd.WriteRegion(table.AsSpan(8), 0, memory.Size, TestFrontEnd.UserBase, 0);
        frontEnd.Send(5, table, [(int)memory.FileDescriptor!.DangerousGetHandle()], flags: 1 | NeedReply);
    }

    private static void AssertCommitted(TestFrontEnd frontEnd) => Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(frontEnd.Receive(5)));

    private static void SetMemTable(TestFrontEnd frontEnd, GuestMemoryRegion memory)
    {
        SendSetMemTable(frontEnd, memory);
        AssertCommitted(frontEnd);
    }

    private static unsafe Span<byte> Bytes(GuestMemoryRegion region) =>
        // SAFETY: the region is mapped, Size bytes from HostAddress, for as long as the test holds it.
        new((void*)region.HostAddress, checked((int)region.Size));

    /// <summary>
    /// A blk server whose backend holds every request, on guest memory named for this test; two reads
    /// posted and held, then a head index of 64 on the 64-entry ring (the queue breaks).
    /// </summary>
    private sealed class HeldReads : IDisposable
    {
        private readonly string _oldName = $"lifetime-old-{Guid.NewGuid():N}";
        private readonly GuestMemory _memory;
        private readonly ushort[] _heads;

        public HeldReads(bool breakRing, TimeSpan? drainTimeout = null)
        {
            _memory = new GuestMemory([GuestMemoryRegion.CreateMemfd(new GuestAddress(0), TestFrontEnd.MemorySize, _oldName)]);
            Holding = new HoldingBackend(new MemoryBlockBackend(8 << 20));
            Rig = new BlkServerRig(backend: Holding, memory: _memory);
            Rig.Server.DrainTimeout = drainTimeout ?? Rig.Server.DrainTimeout;
            FrontEnd = Rig.Connect();
            FrontEnd.Start(TestFrontEnd.CreateDrivers(_memory, 1));
            _heads = [BlkServerRig.Post(FrontEnd, 0, In, 0, readLength: ReadLength), BlkServerRig.Post(FrontEnd, 0, In, 8, readLength: ReadLength)];
            foreach (ushort head in _heads)
            {
                Driver.Span(Driver.ChainBuffers(head)[^2].Address, ReadLength).Fill(Untouched);
            }

            Wait(() => Holding.HeldCount == 2, "the reads did not reach the backend");
            Assert.Equal(2, OldMappings()); // ours and the server's
            if (!breakRing)
            {
                return;
            }

            Driver.PutOnAvailRing(64);
            Driver.Kick();
            FrontEnd.Kicks[0].Signal();
            Wait(() => Queue.Error == QueueError.InvalidHeadIndex, "the ring did not break");
            Assert.Equal(2, Queue.InFlightCount);
        }

        public HoldingBackend Holding { get; }

        public BlkServerRig Rig { get; }

        public TestFrontEnd FrontEnd { get; }

        public GuestDriver Driver => FrontEnd.Drivers[0];

        public SplitVirtqueue Queue => Rig.Server.Device.Queues[0];

        /// <summary>The old memory, through our own mapping of its memfd.</summary>
        public GuestMemoryRegion OldRegion => _memory.Regions[0];

        /// <summary>Mappings of the old memfd in this process: ours, plus the server's while it has one.</summary>
        public int OldMappings() => File.ReadLines("/proc/self/maps").Count(line => line.Contains("/memfd:" + _oldName, StringComparison.Ordinal));

        /// <summary>The status byte and data area of each read, in the old memfd (through our mapping).</summary>
        public byte[] ReadAreas()
        {
            using var bytes = new MemoryStream();
            foreach (ushort head in _heads)
            {
                var buffers = Driver.ChainBuffers(head);
                bytes.Write(Driver.Span(buffers[^2].Address, ReadLength));
                bytes.Write(Driver.Span(buffers[^1].Address, 1));
            }

            return bytes.ToArray();
        }

        public void AssertReadsNotDone()
        {
            foreach (ushort head in _heads)
            {
                var buffers = Driver.ChainBuffers(head);
                Assert.Equal(0xFF, Driver.Span(buffers[^1].Address, 1)[0]);
                Assert.True(Driver.Span(buffers[^2].Address, ReadLength).IndexOfAnyExcept(Untouched) < 0);
            }
        }

        /// <summary>
        /// Each read wrote its data and status into the old memfd (so the server's mapping was there
        /// when it completed), then the server unmapped it, after the last one (event 4019).
        /// </summary>
        public void AssertReadsDoneBeforeUnmap()
        {
            Assert.True(Rig.WaitForLog(4019, "generation 1 released, 1 region(s) unmapped"), "the old table was not unmapped");
            Assert.Equal(1, OldMappings());
            Assert.Equal(0, Holding.HeldCount);
            foreach (ushort head in _heads)
            {
                var buffers = Driver.ChainBuffers(head);
                Assert.Equal(0, Driver.Span(buffers[^1].Address, 1)[0]); // VIRTIO_BLK_S_OK
                Assert.True(Driver.Span(buffers[^2].Address, ReadLength).IndexOfAnyExcept((byte)0) < 0);
            }
        }

        /// <summary>
        /// No request is left that could still write guest memory: none held by the backend, none in
        /// flight or stale in the queue. After this, memory compared before and after cannot change.
        /// </summary>
        public void AssertNothingLeftToWrite()
        {
            Wait(() => Holding.HeldCount == 0 && Queue.InFlightCount == 0 && Queue.StaleCount == 0, "requests are still in flight");
        }

        /// <summary>The broken ring's completions reached no used ring: used->idx in the old memory never moved.</summary>
        public void AssertNoHeadCompleted()
        {
            Assert.False(Driver.TryGetUsed(out ushort head, out _), $"head {head} was completed");
            Assert.Equal(0, Queue.InFlightCount);
        }

        public void Dispose()
        {
            FrontEnd.Dispose();
            Rig.Dispose();
            _memory.Dispose();
        }

        private static void Wait(Func<bool> condition, string what)
        {
            long deadline = Environment.TickCount64 + 10_000;
            while (!condition())
            {
                Assert.True(Environment.TickCount64 < deadline, what);
                Thread.Sleep(2);
            }
        }
    }
}
