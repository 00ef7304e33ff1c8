using System;
using System.Collections.Generic;
using Xunit;

namespace Virtio.Kvm.Tests;

/// <summary>The routing table's bookkeeping without KVM: which GSIs are handed out and what table they make.</summary>
public sealed class GsiTableTests
{
    [Fact]
    public void FirstMsiGsi_IsPastTheIoApicPins_AndPastEveryFixedGsi()
    {
        Assert.Equal(24u, new GsiTable(KvmIrqRoute.StandardIrqChipRoutes()).FirstMsiGsi);
        Assert.Equal(24u, new GsiTable([]).FirstMsiGsi);
        Assert.Equal(41u, new GsiTable([KvmIrqRoute.ToIrqChip(40, KvmIrqChip.IoApic, 9), KvmIrqRoute.ToIrqChip(3, KvmIrqChip.IoApic, 3)]).FirstMsiGsi);
    }

    [Fact]
    public void TryAllocate_HandsOutTheLowestFreeGsi_AndReusesAReleasedOne()
    {
        var table = new GsiTable(KvmIrqRoute.StandardIrqChipRoutes());

        Assert.True(table.TryAllocate(out uint a));
        Assert.True(table.TryAllocate(out uint b));
        Assert.True(table.TryAllocate(out uint c));
        Assert.Equal([24u, 25u, 26u], new[] { a, b, c });

        Assert.False(table.Release(b));
        Assert.True(table.TryAllocate(out uint again));
        Assert.Equal(25u, again);
        Assert.True(table.TryAllocate(out uint next));
        Assert.Equal(27u, next);
    }

    [Fact]
    public void TryAllocate_StopsWhereOneMoreRouteCouldOverflowKvmsTable()
    {
        IReadOnlyList<KvmIrqRoute> standard = KvmIrqRoute.StandardIrqChipRoutes();
        var table = new GsiTable(standard);
        int handedOut = 0;
        while (table.TryAllocate(out uint gsi))
        {
            table.SetRoute(gsi, KvmIrqRoute.ToMsi(gsi, 0xFEE0_0000, 0x30));
            handedOut++;
        }

        // 40 fixed entries and one MSI entry per GSI fill the 4096 KVM takes.
        Assert.Equal(KvmVm.MaxGsiRoutes - standard.Count, handedOut);
        Assert.Equal(KvmVm.MaxGsiRoutes, table.Build().Length);
        Assert.True(table.Release(100));
        Assert.True(table.TryAllocate(out uint reused));
        Assert.Equal(100u, reused);
    }

    [Fact]
    public void TryAllocate_StopsAtKvmsLastGsi_EvenWithFewRoutes()
    {
        // A fixed GSI near the top leaves only the GSIs above it, all below 4096.
        var table = new GsiTable([KvmIrqRoute.ToIrqChip(4093, KvmIrqChip.IoApic, 1)]);

        Assert.True(table.TryAllocate(out uint a));
        Assert.True(table.TryAllocate(out uint b));
        Assert.False(table.TryAllocate(out _));
        Assert.Equal([4094u, 4095u], new[] { a, b });
    }

    [Fact]
    public void Build_IsTheFixedRoutesInOrder_ThenEachMsiRouteByGsi_WithoutRoutelessGsis()
    {
        KvmIrqRoute pin = KvmIrqRoute.ToIrqChip(5, KvmIrqChip.IoApic, 5);
        KvmIrqRoute pic = KvmIrqRoute.ToIrqChip(1, KvmIrqChip.PicMaster, 1);
        var table = new GsiTable([pin, pic]);
        Assert.True(table.TryAllocate(out uint first));
        Assert.True(table.TryAllocate(out uint routeless));
        Assert.True(table.TryAllocate(out uint third));
        KvmIrqRoute late = KvmIrqRoute.ToMsi(third, 0xFEE0_0000, 0x41);
        KvmIrqRoute early = KvmIrqRoute.ToMsi(first, 0xFEE0_1000, 0x40);
        table.SetRoute(third, late);
        table.SetRoute(first, early);

        Assert.Equal([pin, pic, early, late], table.Build());
        Assert.Null(table.RouteOf(routeless));

        table.SetRoute(first, null);
        Assert.Equal([pin, pic, late], table.Build());
        Assert.True(table.Release(third));
        Assert.Equal([pin, pic], table.Build());
    }

    [Fact]
    public void SetRoute_OfAGsiNotHandedOut_Throws()
    {
        var table = new GsiTable(KvmIrqRoute.StandardIrqChipRoutes());

        Assert.Throws<InvalidOperationException>(() => table.SetRoute(24, KvmIrqRoute.ToMsi(24, 0xFEE0_0000, 0x30)));
        Assert.Throws<InvalidOperationException>(() => table.SetRoute(5, null));
        Assert.False(table.Release(24));
    }

    [Fact]
    public void Constructor_RefusesAFixedGsiKvmRefuses_AndMoreFixedRoutesThanItTakes()
    {
        Assert.Throws<ArgumentException>(() => new GsiTable([KvmIrqRoute.ToIrqChip(KvmVm.MaxGsiRoutes, KvmIrqChip.IoApic, 1)]));

        var tooMany = new KvmIrqRoute[KvmVm.MaxGsiRoutes + 1];
        for (int i = 0; i < tooMany.Length; i++)
        {
            tooMany[i] = KvmIrqRoute.ToIrqChip(1, KvmIrqChip.IoApic, 1);
        }

        Assert.Throws<ArgumentException>(() => new GsiTable(tooMany));
    }
}
