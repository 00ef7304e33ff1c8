using System;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// What one connection told the back end about one ring (size, addresses, base, kick/call fds,
/// enabled), checked against the device and the memory table as it is told, and the kick fd's
/// registration on the ring's I/O thread while the ring is started. Changed only on the
/// connection's thread (starting and stopping is <see cref="VringRunner"/>'s); the kick handler
/// runs on the ring's I/O thread.
/// </summary>
internal sealed class VhostUserVring
{
    /// <summary>How long stopping the kick handler or closing an old call fd waits for the ring's I/O thread.</summary>
    public static readonly TimeSpan IoThreadTimeout = TimeSpan.FromSeconds(30);

    private static readonly Action<object?> s_nothing = static _ => { };

    private static readonly Action<object?> s_disposeEventFd = static state => ((EventFd)state!).Dispose();

    private static readonly Action<object?> s_onKick = static state =>
    {
        var vring = (VhostUserVring)state!;
        EventFd? kick = vring.Kick;
        if (kick is null || !kick.TryConsume(out _))
        {
            return;
        }

        // The front end's host notifier is off limits to it while we hold the kick fd: we are its
        // external user. The device processes the ring here, and every completion published
        // during this wake-up ends in one call-fd write at the end of the section.
        DeferredCalls.Begin();
        try
        {
            vring.Device.NotifyQueue(vring.Index);
        }
        finally
        {
            DeferredCalls.End();
        }
    };

    private readonly Func<bool> _poll;
    private readonly Action<SplitVirtqueue, QueueError> _onBroken;
    private IDisposable? _registration;
    private IDisposable? _poller;
    private EventFd? _errorFd;

    public VhostUserVring(VirtioDevice device, ushort index, IoThread ioThread)
    {
        Device = device;
        Index = index;
        IoThread = ioThread;
        Num = device.Queues[index].MaxSize;
        _poll = Poll;
        _onBroken = (_, _) => SignalError();
    }

    public VirtioDevice Device { get; }

    public ushort Index { get; }

    public IoThread IoThread { get; }

    public ushort Num { get; private set; }

    public bool HasAddresses { get; private set; }

    public ulong DescriptorTable { get; private set; }

    public ulong AvailRing { get; private set; }

    public ulong UsedRing { get; private set; }

    /// <summary>With VHOST_VRING_F_LOG: the guest address used-ring writes are logged at (SET_VRING_ADDR's log_guest_addr); null without it.</summary>
    public ulong? UsedLogAddress { get; private set; }

    /// <summary>
    /// SET/GET_VRING_BASE's value as on the wire: a split ring's next available index, or a packed
    /// ring's positions and wrap counters (<see cref="PackedBase"/>).
    /// </summary>
    public uint Base { get; set; }

    /// <summary>Whether the ring is a packed virtqueue: VIRTIO_F_RING_PACKED is in force on the device.</summary>
    public bool Packed => Device.IsNegotiated(VirtioFeatures.RingPacked);

    public EventFd? Kick { get; private set; }

    public EventFdGuestNotifier? Call { get; private set; }

    /// <summary>The SET_VRING_ERR fd: signalled when the ring breaks while it is served (as rust-vmm's back ends do), so the front end learns of it.</summary>
    public EventFd? Error => Volatile.Read(ref _errorFd);

    public bool Enabled { get; set; }

    public bool Started => _registration is not null;

    /// <summary>The layout of the ring at its current size (a split ring's; see <see cref="PartSizes"/>).</summary>
    public SplitRingLayout Layout => new(Num);

    /// <summary>
    /// The bytes of each part of the ring at its current size: for a split ring the descriptor table
    /// and the available and used rings; for a packed ring the descriptor ring and the driver and device
    /// event suppression structures (virtio 1.2 §2.8.10), which SET_VRING_ADDR names in the same fields.
    /// </summary>
    public (ulong Descriptors, ulong Driver, ulong Device) PartSizes
    {
        get
        {
            if (Packed)
            {
                return ((ulong)Num * 16, 4, 4);
            }

            SplitRingLayout layout = Layout;
            return ((ulong)layout.DescriptorTableSize, (ulong)layout.AvailRingSize, (ulong)layout.UsedRingSize);
        }
    }

    /// <summary>Refuses a change to a running ring.</summary>
    public void RequireStopped(VhostUserRequest request)
    {
        if (Started)
        {
            throw new VhostUserProtocolException($"{request}: ring {Index} is running (stop it with GET_VRING_BASE first)");
        }
    }

    /// <summary>SET_VRING_NUM: a power of two up to the queue's maximum.</summary>
    public void SetNum(uint num)
    {
        ushort max = Device.Queues[Index].MaxSize;
        if (num == 0 || num > max || (num & (num - 1)) != 0)
        {
            throw new VhostUserProtocolException($"SET_VRING_NUM: ring {Index} size {num} is not a power of two in 1..{max}");
        }

        RequireStopped(VhostUserRequest.SetVringNum);
        Num = (ushort)num;
    }

    /// <summary>SET_VRING_ADDR: each part of the ring, at the current size, inside one region of <paramref name="table"/>.</summary>
    public void SetAddresses(VringAddress address, VhostUserMemoryTable table)
    {
        RequireStopped(VhostUserRequest.SetVringAddr);
        (ulong descriptors, ulong driver, ulong device) = PartSizes;
        DescriptorTable = Translate(table, "descriptor table", address.DescriptorTable, descriptors);
        UsedRing = Translate(table, "used ring", address.UsedRing, device);
        AvailRing = Translate(table, "available ring", address.AvailRing, driver);
        UsedLogAddress = (address.Flags & VringAddress.FlagLog) != 0 ? address.Log : null;
        HasAddresses = true;
    }

    /// <summary>
    /// SET_VRING_ADDR on a running ring: allowed only when it names the addresses the ring runs on (QEMU
    /// sends it so to switch VHOST_VRING_F_LOG during a migration); the caller stops and restarts the ring.
    /// </summary>
    public bool SameAddresses(VringAddress address, VhostUserMemoryTable table)
    {
        (ulong descriptors, ulong driver, ulong device) = PartSizes;
        return HasAddresses
            && table.TryTranslateUserAddress(address.DescriptorTable, descriptors, out ulong descriptorTable) && descriptorTable == DescriptorTable
            && table.TryTranslateUserAddress(address.UsedRing, device, out ulong usedRing) && usedRing == UsedRing
            && table.TryTranslateUserAddress(address.AvailRing, driver, out ulong availRing) && availRing == AvailRing;
    }

    /// <summary>
    /// SET_VRING_BASE: a split ring's 16-bit next available index; a packed ring's 32-bit
    /// <see cref="PackedBase"/>, with both positions below the ring size.
    /// </summary>
    public void SetBase(uint value)
    {
        if (Packed)
        {
            var packed = PackedBase.Decode(value);
            if (packed.AvailPosition >= Num || packed.UsedPosition >= Num)
            {
                throw new VhostUserProtocolException($"SET_VRING_BASE: ring {Index} packed base 0x{value:x8} names a position at or past the ring size {Num}");
            }
        }
        else if (value > ushort.MaxValue)
        {
            throw new VhostUserProtocolException($"SET_VRING_BASE: ring {Index} base {value} is over 65535 (split rings)");
        }

        RequireStopped(VhostUserRequest.SetVringBase);
        Base = value;
    }

    /// <summary>RESET_DEVICE: back to the state before any SET_VRING_* (the ring is stopped; its fds are closed by the caller).</summary>
    public void ForgetConfiguration()
    {
        Num = Device.Queues[Index].MaxSize;
        DescriptorTable = AvailRing = UsedRing = 0;
        HasAddresses = false;
        Base = 0;
        Enabled = false;
    }

    /// <summary>Replaces the kick fd (the ring is stopped), closing the old one.</summary>
    public void SetKick(EventFd? kick)
    {
        Kick?.Dispose();
        Kick = kick;
    }

    /// <summary>Replaces the call notifier and returns the old one, which the caller closes once no completion can hold it.</summary>
    private EventFdGuestNotifier? SetCall(EventFd? call)
    {
        EventFdGuestNotifier? old = Call;
        Call = call is null ? null : new EventFdGuestNotifier(call);
        return old;
    }

    /// <summary>Replaces the error fd, closing the old one.</summary>
    public void SetError(EventFd? error)
    {
        EventFd? old = Interlocked.Exchange(ref _errorFd, error);
        old?.Dispose();
    }

    /// <summary>
    /// Starts serving the kick fd on the ring's I/O thread, and polls the ring there while the thread
    /// polls (<see cref="IoThread.PollingDuration"/> above zero): buffers the front end made available
    /// are then processed without waiting for the kick.
    /// </summary>
    public void StartServing()
    {
        _registration = IoThread.Register(Kick!, s_onKick, this);
        _poller = IoThread.RegisterPoller(_poll);
        SplitVirtqueue queue = Device.Queues[Index];
        queue.Broken += _onBroken;
        if (queue.Error != QueueError.None)
        {
            SignalError(); // broken while it started (a resubmitted head the region named wrongly)
        }
    }

    /// <summary>
    /// Stops serving the kick fd and returns once no kick handler of this ring runs any more (a
    /// handler already running finishes first: the I/O thread's next turn comes after it). Returns
    /// <see cref="IoThreadRunResult.TimedOut"/> when the thread did not come round in time; a
    /// stopped I/O thread runs no handler, so <see cref="IoThreadRunResult.Stopped"/> is as good as
    /// <see cref="IoThreadRunResult.Ran"/>.
    /// </summary>
    public IoThreadRunResult StopServing()
    {
        if (_registration is null)
        {
            return IoThreadRunResult.Ran;
        }

        _registration.Dispose();
        _registration = null;
        _poller?.Dispose();
        _poller = null;
        Device.Queues[Index].Broken -= _onBroken;
        return IoThread.RunAndWait(s_nothing, null, IoThreadTimeout);
    }

    /// <summary>Signals the error fd, if any; on the thread that broke the queue, racing a SET_VRING_ERR that replaces it.</summary>
    private void SignalError()
    {
        try
        {
            Volatile.Read(ref _errorFd)?.Signal();
        }
        catch (ObjectDisposedException)
        {
            // Replaced or closed meanwhile: the front end gave a new fd (or none) after the break.
        }
    }

    /// <summary>The ring's poller, on its I/O thread: a kick found by looking at avail->idx, handled as <c>s_onKick</c> handles one.</summary>
    private bool Poll() => Device.PollQueue(Index);

    /// <summary>
    /// Replaces the call notifier, in <paramref name="notifier"/> too. A completion on another thread may still hold the old one: its fd
    /// is closed on the I/O thread's next turn, after that write (or now, if the thread has stopped).
    /// Returns <see cref="IoThreadRunResult.TimedOut"/> when the thread did not come round in time
    /// (the fd is then closed when it does).
    /// </summary>
    public IoThreadRunResult ReplaceCall(EventFd? call, VhostUserGuestNotifier notifier)
    {
        EventFdGuestNotifier? old = SetCall(call);
        notifier.SetCall(Index, Call);
        if (old is null)
        {
            return IoThreadRunResult.Ran;
        }

        IoThreadRunResult result = IoThread.RunAndWait(s_disposeEventFd, old.EventFd, IoThreadTimeout);
        if (result == IoThreadRunResult.Stopped)
        {
            old.EventFd.Dispose();
        }

        return result;
    }

    /// <summary>Closes the fds this ring holds. The ring is stopped.</summary>
    public void DisposeFds()
    {
        SetKick(null);
        SetCall(null)?.EventFd.Dispose();
        SetError(null);
    }

    private ulong Translate(VhostUserMemoryTable table, string what, ulong user, ulong length)
    {
        if (!table.TryTranslateUserAddress(user, length, out ulong guest))
        {
            throw new VhostUserProtocolException($"SET_VRING_ADDR: ring {Index} {what} at user address 0x{user:x} (0x{length:x} bytes) is outside the shared memory");
        }

        return guest;
    }
}
