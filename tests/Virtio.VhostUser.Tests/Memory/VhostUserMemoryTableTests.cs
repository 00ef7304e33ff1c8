using System;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Memory;
using Virtio.Testing;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests.Memory;

/// <summary>
/// The memory table's two steps: a prepared generation maps its regions but the device sees
/// nothing of it until it is committed; committing unmaps what the old generation had and the new
/// one has not; only the generation prepared from the current one may be committed.
/// </summary>
public sealed class VhostUserMemoryTableTests
{
    private const ulong Size = 1 << 20;
    private const ulong User = 0x7000_0000;

    [Fact]
    public void PreparedTable_IsSeenOnlyOnceCommitted()
    {
        using GuestMemoryRegion file = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test");
        var view = new VhostUserMemory();
        using var table = new VhostUserMemoryTable(view, NullLogger.Instance);

        MemoryTableGeneration next = table.PrepareReplace(TableMessage(file), [new MemoryRegionDescription(0, Size, User, 0)]);
        Assert.Equal(0, table.Current.Number);
        Assert.False(view.TryGetSpan(new GuestAddress(0x1000), 8, out _));

        table.Commit(next);
        Assert.Equal(1, table.Current.Number);
        Assert.True(view.TryGetSpan(new GuestAddress(0x1000), 8, out _));
        Assert.True(table.TryTranslateUserAddress(User + 0x2000, 0x100, out ulong guest));
        Assert.Equal(0x2000ul, guest);
    }

    [Fact]
    public void RemovingTheRegion_UnmapsIt_OnCommit()
    {
        using GuestMemoryRegion file = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test");
        var view = new VhostUserMemory();
        using var table = new VhostUserMemoryTable(view, NullLogger.Instance);
        var region = new MemoryRegionDescription(0, Size, User, 0);
        table.Commit(table.PrepareReplace(TableMessage(file), [region]));
        VhostUserMemoryRegion mapped = Assert.Single(table.Current.Regions);

        MemoryTableGeneration next = table.PrepareRemove(region);
        Assert.True(view.TryGetSpan(new GuestAddress(0), 8, out _));
        Assert.NotEqual(0, mapped.Mapping.HostAddress);
        table.Commit(next);

        Assert.Empty(table.Current.Regions);
        Assert.False(view.TryGetSpan(new GuestAddress(0), 8, out _));
        Assert.Equal(0, mapped.Mapping.HostAddress); // unmapped
    }

    [Fact]
    public void RemovingARegionNotInTheTable_IsRefused()
    {
        using var table = new VhostUserMemoryTable(new VhostUserMemory(), NullLogger.Instance);

        var exception = Assert.Throws<VhostUserProtocolException>(() => table.PrepareRemove(new MemoryRegionDescription(0, Size, User, 0)));
        Assert.Contains("REM_MEM_REG: no region at guest 0x0", exception.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GenerationNotPreparedFromTheCurrentOne_IsNotCommitted()
    {
        using GuestMemoryRegion file = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test");
        using var table = new VhostUserMemoryTable(new VhostUserMemory(), NullLogger.Instance);
        MemoryTableGeneration first = table.PrepareReplace(TableMessage(file), [new MemoryRegionDescription(0, Size, User, 0)]);
        MemoryTableGeneration stale = table.PrepareReplace(TableMessage(file), [new MemoryRegionDescription(0, Size, User, 0)]);
        table.Commit(first);

        Assert.Throws<InvalidOperationException>(() => table.Commit(stale));
        Assert.Same(first, table.Current);
        Assert.Single(stale.Regions).Mapping.Dispose();
    }

    [Fact]
    public void RetiredGeneration_IsUnmappedOnlyAfterTheLastRequestPoppedUnderIt()
    {
        using GuestMemoryRegion file = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test");
        using GuestMemoryRegion other = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test-2");
        var logger = new CapturingLogger();
        var view = new VhostUserMemory();
        using var table = new VhostUserMemoryTable(view, logger);
        var region = new MemoryRegionDescription(0, Size, User, 0);
        table.Commit(table.PrepareReplace(TableMessage(file), [region]));
        MemoryTableGeneration old = table.Current;
        VhostUserMemoryRegion mapped = Assert.Single(old.Regions);
        var pins = new GenerationPins(view, queueIndex: 0, maxSize: 16, logger);
        pins.ChainTaken(3); // a request popped under the first table, still at the backend
        pins.ChainTaken(5);

        table.Commit(table.PrepareReplace(TableMessage(other), [region]));
        Assert.Equal(2, old.InFlight);
        Assert.NotEqual(0, mapped.Mapping.HostAddress); // kept for the requests
        Assert.Single(logger.Entries, e => e.EventId.Id == 4018);

        pins.ChainReleased(3);
        Assert.NotEqual(0, mapped.Mapping.HostAddress);
        pins.ChainReleased(5);
        Assert.Equal(0, mapped.Mapping.HostAddress); // the last one let go
        Assert.Single(logger.Entries, e => e.EventId.Id == 4019 && e.Message.Contains("generation 1 released, 1 region(s)", StringComparison.Ordinal));
    }

    [Fact]
    public void MappingKeptByTheNextGeneration_OutlivesAPinnedOlderOne()
    {
        // ADD_MEM_REG then REM_MEM_REG of the first region: the region is unmapped only when neither
        // the generation that removed it is current nor a request pins an older one holding it.
        using GuestMemoryRegion file = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test");
        using GuestMemoryRegion second = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), Size, "table-test-2");
        var view = new VhostUserMemory();
        using var table = new VhostUserMemoryTable(view, NullLogger.Instance);
        var first = new MemoryRegionDescription(0, Size, User, 0);
        table.Commit(table.PrepareReplace(TableMessage(file), [first]));
        VhostUserMemoryRegion mapped = Assert.Single(table.Current.Regions);
        var pins = new GenerationPins(view, queueIndex: 0, maxSize: 16, NullLogger.Instance);
        pins.ChainTaken(0);

        table.Commit(table.PrepareAdd(TableMessage(second), new MemoryRegionDescription(Size, Size, User + Size, 0)));
        table.Commit(table.PrepareRemove(first));
        Assert.NotEqual(0, mapped.Mapping.HostAddress); // generation 1 is pinned and holds it

        pins.ChainReleased(0);
        Assert.Equal(0, mapped.Mapping.HostAddress);
    }

    /// <summary>A SET_MEM_TABLE message carrying a duplicate of <paramref name="file"/>'s fd (its payload is not read here).</summary>
    private static VhostUserMessage TableMessage(GuestMemoryRegion file)
    {
        var m = new VhostUserMessage { Request = VhostUserRequest.SetMemTable, Size = 8 + MemoryRegionDescription.WireSize };
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, 1);
        m.AddFd(new SafeFileHandle(Tmds.Linux.LibC.dup((int)file.FileDescriptor!.DangerousGetHandle()), ownsHandle: true));
        return m;
    }
}
