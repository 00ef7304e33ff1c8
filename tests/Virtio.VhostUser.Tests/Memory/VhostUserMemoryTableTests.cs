using System;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Memory;
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

    /// <summary>A SET_MEM_TABLE message carrying a duplicate of <paramref name="file"/>'s fd (its payload is not read here).</summary>
    private static VhostUserMessage TableMessage(GuestMemoryRegion file)
    {
        var m = new VhostUserMessage { Request = VhostUserRequest.SetMemTable, Size = 8 + MemoryRegionDescription.WireSize };
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, 1);
        m.AddFd(new SafeFileHandle(Tmds.Linux.LibC.dup((int)file.FileDescriptor!.DangerousGetHandle()), ownsHandle: true));
        return m;
    }
}
