using System;
using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using Tmds.Linux;
using Virtio.Core.Notifications;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm.Notifications;

/// <summary>
/// The KVM fast path for one device's doorbell: a guest write of queue index q to the doorbell
/// signals the event fd assigned to q inside the kernel (KVM_IOEVENTFD with DATAMATCH = q), so the
/// vCPU never exits to user space for it. For virtio-mmio the doorbell is QueueNotify (base + 0x050,
/// 4 bytes wide, <see cref="ForVirtioMmio"/>); a PIO doorbell uses <see cref="KvmIoSpace.Pio"/>.
/// </summary>
/// <remarks>
/// Thread-safe. A refusal is not an error: when KVM is out of io-bus slots (ENOSPC, ENOMEM, E2BIG),
/// the address and value are already taken (EEXIST), or <see cref="Capacity"/> is reached,
/// <see cref="TryAssign"/> returns false with the reason and the queue keeps the synchronous path.
/// Deassign every queue (the <see cref="HostNotifierController"/> does) before disposing the VM.
/// </remarks>
public sealed class KvmIoEventFdBinding : IHostNotifierBinding
{
    /// <summary>The offset of QueueNotify in a virtio-mmio register window.</summary>
    public const ulong VirtioMmioQueueNotifyOffset = 0x050;

    private readonly KvmVm _vm;
    private readonly Dictionary<ushort, EventFd> _assigned = new();
    private readonly Lock _gate = new();
    private int _capacity;

    /// <summary>Creates a binding for the doorbell at <paramref name="address"/>.</summary>
    /// <param name="vm">The VM whose guest rings the doorbell.</param>
    /// <param name="space">Whether the doorbell is an MMIO address or an I/O port.</param>
    /// <param name="address">The doorbell's guest physical address or port.</param>
    /// <param name="width">The width in bytes of the guest's doorbell write (1, 2, 4 or 8): KVM matches the length exactly.</param>
    /// <param name="capacity">How many queues it assigns at most (to leave ioeventfds for others).</param>
    /// <exception cref="ArgumentOutOfRangeException">The width is not 1, 2, 4 or 8, a port is past 0xFFFF, or the capacity is negative.</exception>
    public KvmIoEventFdBinding(KvmVm vm, KvmIoSpace space, ulong address, int width, int capacity = int.MaxValue)
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
        Address = address;
        Width = width;
        _capacity = capacity;
    }

    /// <summary>Creates a binding for the QueueNotify register of the virtio-mmio device at <paramref name="deviceBase"/>.</summary>
    /// <param name="vm">The VM.</param>
    /// <param name="deviceBase">The guest physical address of the device's register window.</param>
    /// <param name="capacity">How many queues it assigns at most.</param>
    /// <returns>The binding.</returns>
    public static KvmIoEventFdBinding ForVirtioMmio(KvmVm vm, ulong deviceBase, int capacity = int.MaxValue) =>
        new(vm, KvmIoSpace.Mmio, checked(deviceBase + VirtioMmioQueueNotifyOffset), 4, capacity);

    /// <summary>MMIO or PIO.</summary>
    public KvmIoSpace Space { get; }

    /// <summary>The doorbell's address or port.</summary>
    public ulong Address { get; }

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

            KvmIoEventFdRequest request = CreateRequest(queueIndex, notifier, deassign: false);
            int errno = _vm.IoEventFd(ref request);
            if (errno != 0)
            {
                if (errno == LibC.ENOSPC || errno == LibC.ENOMEM || errno == LibC.E2BIG)
                {
                    refusal = $"KVM has no room for another ioeventfd on its {Space} bus (errno {errno})";
                    return false;
                }

                if (errno == LibC.EEXIST)
                {
                    refusal = $"another ioeventfd already matches {Space} 0x{Address:x} = {queueIndex} (EEXIST)";
                    return false;
                }

                throw new KvmException($"KVM_IOEVENTFD ({Space} 0x{Address:x}, queue {queueIndex})", errno);
            }

            _assigned.Add(queueIndex, notifier);
            refusal = null;
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
            if (!_assigned.TryGetValue(queueIndex, out EventFd? assigned) || !ReferenceEquals(assigned, notifier))
            {
                throw new InvalidOperationException($"Queue {queueIndex} has no ioeventfd with that event fd.");
            }

            KvmIoEventFdRequest request = CreateRequest(queueIndex, notifier, deassign: true);
            int errno = _vm.IoEventFd(ref request);
            if (errno != 0)
            {
                throw new KvmException($"KVM_IOEVENTFD deassign ({Space} 0x{Address:x}, queue {queueIndex})", errno);
            }

            _assigned.Remove(queueIndex);
        }
    }

    private KvmIoEventFdRequest CreateRequest(ushort queueIndex, EventFd notifier, bool deassign)
    {
        uint flags = KvmIoctl.IoEventFdFlagDataMatch;
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
            DataMatch = queueIndex,
            Address = Address,
            Length = (uint)Width,
            Fd = notifier.Fd,
            Flags = flags,
        };
    }
}
