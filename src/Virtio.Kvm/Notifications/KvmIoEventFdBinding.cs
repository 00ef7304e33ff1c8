using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using Tmds.Linux;
using Virtio.Core.Notifications;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm.Notifications;

/// <summary>
/// The KVM fast path for one device's doorbells: a guest write to queue q's doorbell signals the event
/// fd assigned to q inside the kernel (KVM_IOEVENTFD), so the vCPU never exits to user space for it.
/// With a stride of 0 every queue shares one doorbell and the write's value picks the queue (DATAMATCH
/// = q): virtio-mmio's QueueNotify (base + 0x050, 4 bytes wide, <see cref="ForVirtioMmio"/>), a PIO
/// doorbell (<see cref="KvmIoSpace.Pio"/>), or a virtio-pci notify capability whose
/// notify_off_multiplier is 0. With a stride, queue q's doorbell is <see cref="Address"/> + q * stride
/// and any write of the width there is its kick, with no DATAMATCH (<see cref="ForVirtioPci"/>).
/// </summary>
/// <remarks>
/// Thread-safe. A refusal is not an error: when KVM is out of io-bus slots (ENOSPC, ENOMEM, E2BIG),
/// the address and value are already taken (EEXIST), the doorbell's address would pass 2^64, or
/// <see cref="Capacity"/> is reached, <see cref="TryAssign"/> returns false with the reason and the
/// queue keeps the synchronous path. Deassign every queue (the <see cref="HostNotifierController"/>
/// does) before disposing the VM. <see cref="Rebind"/> moves the doorbells when the guest moves the
/// BAR, and <see cref="Unbind"/> takes them out while it does not decode; a queue the kernel refuses at
/// the new address stays assigned here with no ioeventfd, and <see cref="TryForward"/> carries its
/// kicks, which then exit to user space, to its event fd. For a virtio-pci function: on its
/// BarsChanged, Rebind at its queue 0 doorbell address when BAR 0 decodes, Unbind otherwise; and make
/// TryForward its QueueNotifyHandler.
/// </remarks>
public sealed class KvmIoEventFdBinding : IHostNotifierBinding
{
    /// <summary>The offset of QueueNotify in a virtio-mmio register window.</summary>
    public const ulong VirtioMmioQueueNotifyOffset = 0x050;

    /// <summary>The width of a virtio-pci driver's notify write: the 16-bit queue index (virtio 1.2 §4.1.5.2).</summary>
    public const int VirtioPciNotifyWidth = 2;

    private readonly KvmVm _vm;
    private readonly Dictionary<ushort, Assignment> _assigned = new();
    private readonly Lock _gate = new();
    private int _capacity;
    private ulong _address;
    private bool _unbound;

    /// <summary>Creates a binding for the doorbell at <paramref name="address"/>.</summary>
    /// <param name="vm">The VM whose guest rings the doorbell.</param>
    /// <param name="space">Whether the doorbell is an MMIO address or an I/O port.</param>
    /// <param name="address">The doorbell's guest physical address or port.</param>
    /// <param name="width">The width in bytes of the guest's doorbell write (1, 2, 4 or 8): KVM matches the length exactly.</param>
    /// <param name="capacity">How many queues it assigns at most (to leave ioeventfds for others).</param>
    /// <exception cref="ArgumentOutOfRangeException">The width is not 1, 2, 4 or 8, a port is past 0xFFFF, or the capacity is negative.</exception>
    public KvmIoEventFdBinding(KvmVm vm, KvmIoSpace space, ulong address, int width, int capacity = int.MaxValue)
        : this(vm, space, address, width, capacity, stride: 0)
    {
    }

    // stride 0: one doorbell for every queue, matched on the queue index; otherwise queue q's doorbell is at address + q * stride.
    private KvmIoEventFdBinding(KvmVm vm, KvmIoSpace space, ulong address, int width, int capacity, uint stride)
    {
        ArgumentNullException.ThrowIfNull(vm);
        if (width is not (1 or 2 or 4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "The doorbell width must be 1, 2, 4 or 8 bytes.");
        }

        if (space == KvmIoSpace.Pio && address > 0xFFFF)
        {
            throw new ArgumentOutOfRangeException(nameof(address), address, "An I/O port is 16 bits.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _vm = vm;
        Space = space;
        _address = address;
        Width = width;
        Stride = stride;
        _capacity = capacity;
    }

    /// <summary>Creates a binding for the QueueNotify register of the virtio-mmio device at <paramref name="deviceBase"/>.</summary>
    /// <param name="vm">The VM.</param>
    /// <param name="deviceBase">The guest physical address of the device's register window.</param>
    /// <param name="capacity">How many queues it assigns at most.</param>
    /// <returns>The binding.</returns>
    public static KvmIoEventFdBinding ForVirtioMmio(KvmVm vm, ulong deviceBase, int capacity = int.MaxValue) =>
        new(vm, KvmIoSpace.Mmio, checked(deviceBase + VirtioMmioQueueNotifyOffset), 4, capacity);

    /// <summary>
    /// Creates a binding for a virtio-pci function's notify capability (virtio 1.2 §4.1.4.4): queue q's
    /// doorbell is <paramref name="notifyAddress"/> + queue_notify_off * <paramref name="notifyOffMultiplier"/>,
    /// where the function gives queue q queue_notify_off = q, and the driver writes the 16-bit queue
    /// index there. With a multiplier of 0 every queue shares <paramref name="notifyAddress"/> and the
    /// ioeventfd matches the index; otherwise each queue has its own address and any 16-bit write there
    /// kicks it.
    /// </summary>
    /// <param name="vm">The VM.</param>
    /// <param name="notifyAddress">The guest physical address of the notify region: the BAR's base plus the capability's offset.</param>
    /// <param name="notifyOffMultiplier">The capability's notify_off_multiplier.</param>
    /// <param name="capacity">How many queues it assigns at most.</param>
    /// <returns>The binding; <see cref="Rebind"/> it when the guest moves the BAR.</returns>
    public static KvmIoEventFdBinding ForVirtioPci(KvmVm vm, ulong notifyAddress, uint notifyOffMultiplier, int capacity = int.MaxValue) =>
        new(vm, KvmIoSpace.Mmio, notifyAddress, VirtioPciNotifyWidth, capacity, notifyOffMultiplier);

    /// <summary>MMIO or PIO.</summary>
    public KvmIoSpace Space { get; }

    /// <summary>The doorbell's address or port (queue 0's when <see cref="Stride"/> is not 0); <see cref="Rebind"/> changes it.</summary>
    public ulong Address
    {
        get { lock (_gate) { return _address; } }
    }

    /// <summary>0 when the queues share one doorbell and the index is matched; otherwise the distance between two queues' doorbells.</summary>
    public uint Stride { get; }

    /// <summary>The width of the doorbell write in bytes.</summary>
    public int Width { get; }

    /// <summary>How many queues it assigns at most; lowering it does not revoke existing assignments.</summary>
    public int Capacity
    {
        get { lock (_gate) { return _capacity; } }
        set { lock (_gate) { _capacity = value; } }
    }

    /// <summary>How many queues are assigned now.</summary>
    public int AssignedCount
    {
        get { lock (_gate) { return _assigned.Count; } }
    }

    /// <inheritdoc />
    /// <exception cref="KvmException">KVM_IOEVENTFD failed for a reason other than capacity or a conflict (EINVAL, EBADF).</exception>
    public bool TryAssign(ushort queueIndex, EventFd notifier, [NotNullWhen(false)] out string? refusal)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        lock (_gate)
        {
            if (_assigned.ContainsKey(queueIndex))
            {
                refusal = $"queue {queueIndex} already has an ioeventfd";
                return false;
            }

            if (_assigned.Count >= _capacity)
            {
                refusal = $"the binding's limit of {_capacity} ioeventfds is reached";
                return false;
            }

            if (_unbound)
            {
                // The doorbells do not decode now: the ioeventfd is registered by the next Rebind.
                _assigned.Add(queueIndex, new Assignment(notifier, null));
                refusal = null;
                return true;
            }

            if (!TryRegister(_address, queueIndex, notifier, out refusal))
            {
                return false;
            }

            _assigned.Add(queueIndex, new Assignment(notifier, _address));
            return true;
        }
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException"><paramref name="notifier"/> is not the one assigned to the queue.</exception>
    /// <exception cref="KvmException">KVM_IOEVENTFD with the DEASSIGN flag failed.</exception>
    public void Deassign(ushort queueIndex, EventFd notifier)
    {
        ArgumentNullException.ThrowIfNull(notifier);
        lock (_gate)
        {
            if (!_assigned.TryGetValue(queueIndex, out Assignment assigned) || !ReferenceEquals(assigned.Notifier, notifier))
            {
                throw new InvalidOperationException($"Queue {queueIndex} has no ioeventfd with that event fd.");
            }

            if (assigned.RegisteredAt is { } address)
            {
                Unregister(address, queueIndex, notifier);
            }

            _assigned.Remove(queueIndex);
        }
    }

    /// <summary>
    /// Moves every doorbell to <paramref name="address"/> (the guest moved the BAR; queue q's doorbell is
    /// then <paramref name="address"/> + q * <see cref="Stride"/>): each assigned queue's ioeventfd is
    /// deassigned at the old address and assigned at the new one, and later assignments use the new one.
    /// The vCPU thread that decodes the BAR write calls it. A queue the kernel refuses at the new address
    /// (EEXIST: the guest put another doorbell there; no room; an address past 2^64, or past 0xFFFF for
    /// a port) stays assigned here with no ioeventfd: its
    /// kicks exit to user space, where <see cref="TryForward"/> hands them to its event fd, until it is
    /// deassigned or a later rebind succeeds.
    /// </summary>
    /// <param name="address">The new address (queue 0's doorbell).</param>
    /// <param name="refusal">The first queue the kernel refused and why, when it did.</param>
    /// <returns>True when every assigned queue has its ioeventfd at the new address.</returns>
    /// <exception cref="KvmException">KVM_IOEVENTFD failed for a reason other than capacity or a conflict.</exception>
    public bool Rebind(ulong address, [NotNullWhen(false)] out string? refusal)
    {
        lock (_gate)
        {
            refusal = null;
            _address = address;
            _unbound = false;
            foreach (ushort queue in new List<ushort>(_assigned.Keys))
            {
                Assignment assigned = _assigned[queue];
                if (assigned.RegisteredAt == address)
                {
                    continue;
                }

                if (assigned.RegisteredAt is { } old)
                {
                    Unregister(old, queue, assigned.Notifier);
                }

                bool moved = TryRegister(address, queue, assigned.Notifier, out string? why);
                refusal ??= why;
                _assigned[queue] = assigned with { RegisteredAt = moved ? address : null };
            }

            return refusal is null;
        }
    }

    /// <summary>
    /// Takes every doorbell's ioeventfd out of KVM while the doorbells do not decode (the guest cleared
    /// Memory Space Enable, or the BAR is being moved): the queues stay assigned here, and queues assigned
    /// meanwhile get no ioeventfd, until <see cref="Rebind"/> registers them all at the address it is given.
    /// </summary>
    /// <exception cref="KvmException">KVM_IOEVENTFD with the DEASSIGN flag failed.</exception>
    public void Unbind()
    {
        lock (_gate)
        {
            _unbound = true;
            foreach (ushort queue in new List<ushort>(_assigned.Keys))
            {
                Assignment assigned = _assigned[queue];
                if (assigned.RegisteredAt is { } address)
                {
                    Unregister(address, queue, assigned.Notifier);
                    _assigned[queue] = assigned with { RegisteredAt = null };
                }
            }
        }
    }

    /// <summary>
    /// For a kick of <paramref name="queueIndex"/> that reached user space (the embedder's doorbell
    /// handler): signals the queue's event fd if one is assigned, so the queue's I/O thread serves it and
    /// the synchronous and event fd paths are never live together; a queue left without an ioeventfd by
    /// <see cref="Rebind"/> keeps working this way. Any thread may call it; it waits at most for the
    /// binding's lock (held across one assign, deassign or rebind) and one eventfd write.
    /// </summary>
    /// <param name="queueIndex">The queue the write was for.</param>
    /// <returns>False when no event fd is assigned: process the kick synchronously.</returns>
    public bool TryForward(ushort queueIndex)
    {
        EventFd? notifier;
        lock (_gate)
        {
            notifier = _assigned.TryGetValue(queueIndex, out Assignment assigned) ? assigned.Notifier : null;
        }

        notifier?.Signal();
        return notifier is not null;
    }

    private bool TryRegister(ulong address, ushort queueIndex, EventFd notifier, [NotNullWhen(false)] out string? refusal)
    {
        if (!TryDoorbell(address, queueIndex, out ulong doorbell))
        {
            refusal = $"queue {queueIndex}'s doorbell at 0x{address:x} + {queueIndex} * {Stride} is past the end of the address space";
            return false;
        }

        KvmIoEventFdRequest request = CreateRequest(doorbell, queueIndex, notifier, deassign: false);
        int errno = _vm.IoEventFd(ref request);
        if (errno == 0)
        {
            refusal = null;
            return true;
        }

        if (errno == LibC.ENOSPC || errno == LibC.ENOMEM || errno == LibC.E2BIG)
        {
            refusal = $"KVM has no room for another ioeventfd on its {Space} bus (errno {errno})";
            return false;
        }

        if (errno == LibC.EEXIST)
        {
            refusal = $"another ioeventfd already matches {Space} 0x{doorbell:x} for queue {queueIndex} (EEXIST)";
            return false;
        }

        throw new KvmException($"KVM_IOEVENTFD ({Space} 0x{doorbell:x}, queue {queueIndex})", errno);
    }

    private void Unregister(ulong address, ushort queueIndex, EventFd notifier)
    {
        // A registered doorbell's address did not overflow when it was registered.
        _ = TryDoorbell(address, queueIndex, out ulong doorbell);
        KvmIoEventFdRequest request = CreateRequest(doorbell, queueIndex, notifier, deassign: true);
        int errno = _vm.IoEventFd(ref request);
        if (errno != 0)
        {
            throw new KvmException($"KVM_IOEVENTFD deassign ({Space} 0x{doorbell:x}, queue {queueIndex})", errno);
        }
    }

    /// <summary>Queue <paramref name="queueIndex"/>'s doorbell for a binding at <paramref name="address"/>; false when its end wraps past 2^64 (KVM refuses that with EINVAL, and so an end of exactly 2^64) or passes 0xFFFF for a port.</summary>
    private bool TryDoorbell(ulong address, ushort queueIndex, out ulong doorbell)
    {
        UInt128 at = (UInt128)address + ((UInt128)queueIndex * Stride);
        UInt128 end = Space == KvmIoSpace.Pio ? 0x1_0000 : ulong.MaxValue;
        bool fits = at + (UInt128)Width <= end;
        doorbell = fits ? (ulong)at : 0;
        return fits;
    }

    private KvmIoEventFdRequest CreateRequest(ulong doorbell, ushort queueIndex, EventFd notifier, bool deassign)
    {
        // A shared doorbell tells the queues apart by the written value; a doorbell per queue needs no match.
        uint flags = Stride == 0 ? KvmIoctl.IoEventFdFlagDataMatch : 0;
        if (Space == KvmIoSpace.Pio)
        {
            flags |= KvmIoctl.IoEventFdFlagPio;
        }

        if (deassign)
        {
            flags |= KvmIoctl.IoEventFdFlagDeassign;
        }

        return new KvmIoEventFdRequest
        {
            DataMatch = Stride == 0 ? queueIndex : 0UL,
            Address = doorbell,
            Length = (uint)Width,
            Fd = notifier.Fd,
            Flags = flags,
        };
    }

    /// <summary>A queue's event fd and where its ioeventfd is registered (null: nowhere, after a refused rebind).</summary>
    private readonly record struct Assignment(EventFd Notifier, ulong? RegisteredAt);
}
