using System;
using System.Collections.Generic;
using Virtio.Core.Notifications;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

/// <summary>
/// The virtio-pci notify capability on KVM ioeventfds (<see cref="KvmIoEventFdBinding.ForVirtioPci"/>):
/// a real-mode guest writes the 16-bit queue index to a doorbell in a notify region at guest physical
/// 0xD3000 (DS:0x3000), as a driver does (virtio 1.2 §4.1.5.2). Without an irqchip HLT exits, so each
/// run ends after one write; a write no ioeventfd takes reaches the bus window over the region.
/// </summary>
public sealed class VirtioPciDoorbellTests
{
    private const ushort NotifyOffset = 0x3000;
    private const ulong NotifyAddress = RealModeGuest.DataSegmentBase + NotifyOffset;
    private const ushort MovedOffset = 0x5000;
    private const ulong MovedAddress = RealModeGuest.DataSegmentBase + MovedOffset;

    /// <summary>mov ax, value; mov [offset], ax; hlt.</summary>
    private static byte[] Write16(ushort offset, ushort value) =>
        GuestCode.Concat(GuestCode.MovAx(value), GuestCode.StoreAx(offset), GuestCode.Hlt);

    [Fact]
    public void WithAMultiplier_EachQueueHasItsOwnDoorbell_AndAWriteThereSignalsOnlyThatQueue()
    {
        using Doorbells d = Doorbells.Create(multiplier: 4, queues: 3);

        // Queue 1's doorbell is 0xD3000 + 1 * 4; the driver writes the queue index there.
        d.Run(Write16(NotifyOffset + 4, 1));
        Assert.Equal([false, true, false], d.Consume());

        // Queue 2's doorbell: no datamatch, so whatever value is written kicks queue 2, not queue 1.
        d.Run(Write16(NotifyOffset + 8, 1));
        Assert.Equal([false, false, true], d.Consume());

        Assert.Empty(d.Region.Accesses);
        Assert.Equal(0, d.Guest.Vcpu.MmioExits);
    }

    [Fact]
    public void WithAMultiplier_AWriteBetweenDoorbells_OrOfAnotherWidth_ExitsToTheBus()
    {
        using Doorbells d = Doorbells.Create(multiplier: 4, queues: 2);

        d.Run(Write16(NotifyOffset + 2, 0));
        d.Run(GuestCode.Concat(GuestCode.MovEax(1), GuestCode.StoreEax(NotifyOffset + 4), GuestCode.Hlt));

        Assert.Equal([false, false], d.Consume());
        Assert.Equal([(2UL, 2), (4UL, 4)], d.Writes());
    }

    [Fact]
    public void WithoutAMultiplier_AllQueuesShareOneDoorbell_AndTheWrittenIndexPicksTheQueue()
    {
        using Doorbells d = Doorbells.Create(multiplier: 0, queues: 3);

        d.Run(Write16(NotifyOffset, 2));
        Assert.Equal([false, false, true], d.Consume());
        d.Run(Write16(NotifyOffset, 0));
        Assert.Equal([true, false, false], d.Consume());

        // An index no queue has: no ioeventfd matches, so the write exits.
        d.Run(Write16(NotifyOffset, 7));
        Assert.Equal([false, false, false], d.Consume());
        Assert.Equal([(0UL, 2)], d.Writes());
        Assert.Equal(1, d.Guest.Vcpu.MmioExits);
    }

    [Fact]
    public void Rebind_TheGuestMovedTheBar_TheDoorbellsAnswerAtTheNewAddressOnly()
    {
        using Doorbells d = Doorbells.Create(multiplier: 4, queues: 2);
        var moved = new RecordingIoHandler();
        d.Guest.Bus.Add(KvmIoSpace.Mmio, MovedAddress, 0x1000, moved);

        Assert.True(d.Binding.Rebind(MovedAddress, out string? refusal), refusal);
        Assert.Equal(MovedAddress, d.Binding.Address);

        d.Run(Write16(MovedOffset + 4, 1));
        Assert.Equal([false, true], d.Consume());
        Assert.Empty(moved.Accesses);

        d.Run(Write16(NotifyOffset + 4, 1));
        Assert.Equal([false, false], d.Consume());
        Assert.Equal([(4UL, 2)], d.Writes());

        // Deassign unregisters at the new address: the write there exits now.
        d.Binding.Deassign(1, d.Kicks[1]);
        d.Run(Write16(MovedOffset + 4, 1));
        Assert.Equal([false, false], d.Consume());
        Assert.Single(moved.Accesses);
    }

    [Fact]
    public void Unbind_WhileTheBarDoesNotDecode_TheDoorbellsExit_AndRebindRegistersEveryQueueAgain()
    {
        using Doorbells d = Doorbells.Create(multiplier: 4, queues: 2);
        d.Binding.Deassign(1, d.Kicks[1]);

        d.Binding.Unbind();
        d.Run(Write16(NotifyOffset, 0));
        Assert.Equal([false, false], d.Consume());
        Assert.Equal([(0UL, 2)], d.Writes());

        // A queue assigned while unbound is accepted, gets no ioeventfd yet, and is registered by the rebind.
        Assert.True(d.Binding.TryAssign(1, d.Kicks[1], out string? refusal), refusal);
        d.Run(Write16(NotifyOffset + 4, 1));
        Assert.Equal([false, false], d.Consume());
        Assert.True(d.Binding.Rebind(NotifyAddress, out refusal), refusal);
        d.Run(Write16(NotifyOffset, 0));
        d.Run(Write16(NotifyOffset + 4, 1));
        Assert.Equal([true, true], d.Consume());
        Assert.Equal([(0UL, 2), (4UL, 2)], d.Writes());
    }

    [Fact]
    public void Rebind_OntoADoorbellTheKernelRefuses_KeepsTheQueueAssigned_AndTryForwardCarriesItsKicks()
    {
        using Doorbells d = Doorbells.Create(multiplier: 0, queues: 2);
        var other = KvmIoEventFdBinding.ForVirtioPci(d.Guest.Vm, MovedAddress, 0);
        using EventFd otherKick = EventFd.Create();
        Assert.True(other.TryAssign(1, otherKick, out string? refusal), refusal);

        Assert.False(d.Binding.Rebind(MovedAddress, out refusal));

        Assert.Contains("EEXIST", refusal, StringComparison.Ordinal);
        Assert.Equal(2, d.Binding.AssignedCount);
        Assert.True(d.Binding.TryForward(1));
        Assert.Equal([false, true], d.Consume());

        // Queue 0 moved; queue 1's index at the new address is the other binding's.
        d.Run(Write16(MovedOffset, 0));
        Assert.Equal([true, false], d.Consume());
        d.Run(Write16(MovedOffset, 1));
        Assert.True(otherKick.TryConsume(out _));
        Assert.Equal([false, false], d.Consume());

        // The unregistered queue deassigns without an ioctl; TryForward then says "process it yourself".
        d.Binding.Deassign(1, d.Kicks[1]);
        Assert.False(d.Binding.TryForward(1));
        other.Deassign(1, otherKick);
    }

    [Fact]
    public void TryAssignAndRebind_ADoorbellPastTheAddressSpace_AreRefusalsNotExceptions()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var binding = KvmIoEventFdBinding.ForVirtioPci(vm, ulong.MaxValue - 5, 4);
        using EventFd q0 = EventFd.Create();
        using EventFd q2 = EventFd.Create();

        Assert.True(binding.TryAssign(0, q0, out string? refusal), refusal);
        Assert.False(binding.TryAssign(2, q2, out refusal));
        Assert.Contains("past the end", refusal, StringComparison.Ordinal);

        Assert.True(binding.Rebind(0x1000, out refusal), refusal);
        Assert.True(binding.TryAssign(2, q2, out refusal), refusal);
        Assert.False(binding.Rebind(ulong.MaxValue - 1, out refusal));
        Assert.Contains("past the end", refusal, StringComparison.Ordinal);
        binding.Deassign(0, q0);
        binding.Deassign(2, q2);
    }

    [Fact]
    public void ForVirtioPci_IsA16BitMmioDoorbell_WithTheMultiplierAsStride()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var binding = KvmIoEventFdBinding.ForVirtioPci(vm, NotifyAddress, 4);

        Assert.Equal(KvmIoSpace.Mmio, binding.Space);
        Assert.Equal(2, binding.Width);
        Assert.Equal(4u, binding.Stride);
        Assert.Equal(NotifyAddress, binding.Address);
        Assert.Equal(0u, KvmIoEventFdBinding.ForVirtioMmio(vm, 0xD0000).Stride);
    }

    /// <summary>A guest, a bus window over the notify region, a binding and one assigned event fd per queue.</summary>
    private sealed class Doorbells : IDisposable
    {
        private Doorbells(RealModeGuest guest, KvmIoEventFdBinding binding, EventFd[] kicks)
        {
            Guest = guest;
            Binding = binding;
            Kicks = kicks;
            guest.Bus.Add(KvmIoSpace.Mmio, NotifyAddress, 0x1000, Region);
        }

        public RealModeGuest Guest { get; }

        public KvmIoEventFdBinding Binding { get; }

        public EventFd[] Kicks { get; }

        public RecordingIoHandler Region { get; } = new();

        public static Doorbells Create(uint multiplier, int queues)
        {
            RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt);
            var binding = KvmIoEventFdBinding.ForVirtioPci(guest.Vm, NotifyAddress, multiplier);
            var kicks = new EventFd[queues];
            for (int q = 0; q < queues; q++)
            {
                kicks[q] = EventFd.Create();
                Assert.True(binding.TryAssign((ushort)q, kicks[q], out string? refusal), refusal);
            }

            return new Doorbells(guest, binding, kicks);
        }

        public void Run(byte[] code)
        {
            Guest.Load(code);
            Assert.Equal(KvmVcpuStopReason.Halted, Guest.Vcpu.Run(Guest.Bus));
        }

        /// <summary>Which queues' event fds were signalled since the last call.</summary>
        public bool[] Consume()
        {
            var signalled = new bool[Kicks.Length];
            for (int q = 0; q < Kicks.Length; q++)
            {
                signalled[q] = Kicks[q].TryConsume(out _);
            }

            return signalled;
        }

        /// <summary>The writes that reached the region's bus window: offset and width.</summary>
        public List<(ulong Offset, int Width)> Writes()
        {
            var writes = new List<(ulong, int)>();
            foreach ((ulong offset, byte[] data, bool isWrite) in Region.Accesses)
            {
                Assert.True(isWrite);
                writes.Add((offset, data.Length));
            }

            return writes;
        }

        public void Dispose()
        {
            Guest.Dispose();
            foreach (EventFd kick in Kicks)
            {
                kick.Dispose();
            }
        }
    }
}
