using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// Starts, stops and drains one connection's rings: a ring starts once it has a kick fd,
/// addresses inside the memory, the features are acked and it is enabled; stopping it waits until
/// its in-flight requests are returned and published. Owns the rings' fds and the in-flight region
/// they are tracked in. Used on the connection's thread.
/// </summary>
internal sealed class VringRunner : IDisposable
{
    private readonly VirtioDevice _device;
    private readonly IGuestMemory _memory;
    private readonly FeatureNegotiation _features;
    private readonly VhostUserGuestNotifier _notifier;
    private readonly ILogger _logger;
    private readonly TimeSpan _drainTimeout;
    private readonly VhostUserVring[] _vrings;
    private readonly DirtyLog _dirtyLog;
    private InFlightRegion? _inFlight;

    public VringRunner(VirtioDevice device, IGuestMemory memory, FeatureNegotiation features, VhostUserGuestNotifier notifier, IReadOnlyList<IoThread> ioThreads, TimeSpan drainTimeout, ILogger logger)
    {
        _dirtyLog = new DirtyLog(device.Queues.Count, logger);
        _drainTimeout = drainTimeout;
        _device = device;
        _memory = memory;
        _features = features;
        _notifier = notifier;
        _logger = logger;
        _vrings = new VhostUserVring[device.Queues.Count];
        for (int i = 0; i < _vrings.Length; i++)
        {
            _vrings[i] = new VhostUserVring(device, (ushort)i, ioThreads[i % ioThreads.Count]);
        }
    }

    /// <summary>How many rings the device has.</summary>
    public int Count => _vrings.Length;

    /// <summary>The connection's dirty-logging state; rings started while it is active log (changed only while they are stopped).</summary>
    public DirtyLog DirtyLog => _dirtyLog;

    /// <summary>Whether any queue still holds a chain (a request that outlived a drain): memory a request may touch must stay mapped.</summary>
    public bool AnyHeld
    {
        get
        {
            foreach (SplitVirtqueue queue in _device.Queues)
            {
                if (Held(queue) > 0)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>
    /// SET_VRING_ADDR. A running ring accepts only its own addresses again, with VHOST_VRING_F_LOG
    /// switched (QEMU at a migration's start and end): it is drained and restarted with the new log address.
    /// </summary>
    public void SetAddresses(VhostUserVring vring, VringAddress address, VhostUserMemoryTable table)
    {
        if (!vring.Started || !vring.SameAddresses(address, table))
        {
            vring.SetAddresses(address, table);
            return;
        }

        Stop(vring);
        vring.SetAddresses(address, table);
        TryStart(vring);
    }

    /// <summary>Ring <paramref name="index"/>, which <paramref name="request"/> names.</summary>
    public VhostUserVring Vring(VhostUserRequest request, uint index)
    {
        if (index >= (uint)_vrings.Length)
        {
            throw new VhostUserProtocolException($"{request}: ring index {index} out of range (the device has {_vrings.Length})");
        }

        return _vrings[index];
    }

    /// <summary>Refuses <paramref name="request"/> while any ring runs.</summary>
    public void RequireAllStopped(VhostUserRequest request)
    {
        foreach (VhostUserVring vring in _vrings)
        {
            vring.RequireStopped(request);
        }
    }

    /// <summary>
    /// Uses <paramref name="region"/> for the rings started from now on and closes the previous one
    /// (every ring is stopped: <see cref="RequireAllStopped"/>). <paramref name="how"/> is for the log.
    /// </summary>
    public void ReplaceInFlight(InFlightRegion region, string how)
    {
        _inFlight?.Dispose();
        _inFlight = region;
        Log.InFlightRegion(_logger, how, region.QueueCount, region.QueueSize);
    }

    /// <summary>SET_VRING_KICK: the ring restarts on the new fd.</summary>
    public void SetKick(VhostUserVring vring, EventFd kick)
    {
        Stop(vring);
        vring.SetKick(kick);
        TryStart(vring);
    }

    /// <summary>SET_VRING_CALL: completions signal the new fd (or nothing).</summary>
    public void SetCall(VhostUserVring vring, EventFd? call)
    {
        // The notifier sees the new fd first; the old one is closed once no completion writes it.
        if (vring.ReplaceCall(call, _notifier) == IoThreadRunResult.TimedOut)
        {
            Log.IoThreadTimedOut(_logger, vring.Index, "closing the old call fd", VhostUserVring.IoThreadTimeout);
        }
    }

    /// <summary>SET_VRING_ENABLE.</summary>
    public void SetEnabled(VhostUserVring vring, bool enabled)
    {
        vring.Enabled = enabled;
        if (enabled)
        {
            TryStart(vring);
        }
        else
        {
            Stop(vring);
        }
    }

    /// <summary>GET_VRING_BASE: stops the ring, closes its kick fd, and returns where it stopped.</summary>
    public VringState StopForBase(VhostUserVring vring)
    {
        Stop(vring);
        vring.SetKick(null);
        return new VringState(vring.Index, vring.Base);
    }

    /// <summary>Where a stopped ring's device stood, in GET_VRING_BASE's encoding for its layout.</summary>
    private static uint BaseOf(SplitVirtqueue queue) =>
        queue.PackedRing
            ? new PackedBase(queue.NextAvail, queue.AvailWrapCounter, queue.NextUsed, queue.UsedWrapCounter).Encode()
            : queue.NextAvail;

    /// <summary>Starts every ring that can start.</summary>
    public void StartAll()
    {
        foreach (VhostUserVring vring in _vrings)
        {
            TryStart(vring);
        }
    }

    /// <summary>Stops every ring.</summary>
    public void StopAll()
    {
        foreach (VhostUserVring vring in _vrings)
        {
            Stop(vring);
        }
    }

    /// <summary>
    /// RESET_DEVICE, after <see cref="StopAll"/>: each ring forgets what the front end configured
    /// (size, addresses, base, enable) and closes its fds, and the in-flight region is dropped.
    /// </summary>
    public void ResetAll()
    {
        foreach (VhostUserVring vring in _vrings)
        {
            SetCall(vring, null);
            vring.SetKick(null);
            vring.SetError(null);
            vring.ForgetConfiguration();
        }

        _inFlight?.Dispose();
        _inFlight = null;
    }

    /// <summary>Stops the rings that run and returns them, for <see cref="Restart"/> (a memory table change in between).</summary>
    public List<VhostUserVring> StopStarted()
    {
        var wasStarted = new List<VhostUserVring>();
        foreach (VhostUserVring vring in _vrings)
        {
            if (vring.Started)
            {
                wasStarted.Add(vring);
                Stop(vring);
            }
        }

        return wasStarted;
    }

    /// <summary>Starts again the rings <see cref="StopStarted"/> stopped.</summary>
    public void Restart(List<VhostUserVring> stopped)
    {
        foreach (VhostUserVring vring in stopped)
        {
            TryStart(vring);
        }
    }

    /// <summary>Starts the ring when it has everything it needs and is enabled.</summary>
    public void TryStart(VhostUserVring vring)
    {
        bool enabled = vring.Enabled || !_features.RingsStartDisabled;
        if (vring.Started || vring.Kick is null || !enabled || !_features.FeaturesAcked || !vring.HasAddresses || !_device.IsLive)
        {
            return;
        }

        (ulong descriptors, ulong driver, ulong device) = vring.PartSizes;
        RequireInMemory(vring, "descriptor table", vring.DescriptorTable, (uint)descriptors);
        RequireInMemory(vring, "available ring", vring.AvailRing, (uint)driver);
        RequireInMemory(vring, "used ring", vring.UsedRing, (uint)device);
        if (vring.Packed)
        {
            StartPacked(vring);
            return;
        }

        if (!TryReadUsedIdx(vring, out ushort usedIdx))
        {
            throw new VhostUserProtocolException($"ring {vring.Index}: used ring unreadable");
        }

        SplitVirtqueue queue = _device.Queues[vring.Index];
        ushort startAt = (ushort)vring.Base;
        ushort[] resubmit = [];
        InFlightTracker? tracker = null;
        if (RegionFor(vring) is InFlightRegion region)
        {
            tracker = new InFlightTracker(region, vring.Index);
            resubmit = tracker.Recover(usedIdx);
            if (resubmit.Length > 0)
            {
                // A back end died with these popped and not completed: they go first, then the
                // ring continues after them (used idx + in flight = where that back end was).
                startAt = (ushort)(usedIdx + resubmit.Length);
                Log.Resubmitting(_logger, vring.Index, resubmit.Length, usedIdx);
            }
        }

        Activate(vring, StateAt(vring, startAt, usedIdx));

        // Nothing processes the ring until StartServing: the tracker and the resubmitted heads are in
        // place before its first pop. Heads the region names wrongly break the queue (DEVICE_NEEDS_RESET).
        // A head still running here (stale: it outlived the last drain) is not lost: not resubmitted.
        queue.InFlightTracker = tracker;
        if (queue.StaleCount > 0)
        {
            resubmit = Array.FindAll(resubmit, head => !queue.IsStale(head));
        }

        if (resubmit.Length > 0 && !queue.TryResubmit(resubmit, out QueueError resubmitError))
        {
            Log.ResubmitRefused(_logger, vring.Index, resubmitError);
        }

        Serve(vring, startAt, usedIdx);
    }

    /// <summary>The in-flight region, when there is one and ring <paramref name="vring"/> fits it (else logged).</summary>
    private InFlightRegion? RegionFor(VhostUserVring vring)
    {
        InFlightRegion? region = _inFlight;
        if (region is not null && (vring.Index >= region.QueueCount || vring.Num > region.QueueSize))
        {
            Log.RingNotTracked(_logger, vring.Index, vring.Num, region.QueueCount, region.QueueSize);
            return null;
        }

        return region;
    }

    /// <summary>The queue state of ring <paramref name="vring"/> as told, starting at these indices (positions on a packed ring).</summary>
    private static SplitVirtqueueState StateAt(VhostUserVring vring, ushort nextAvail, ushort nextUsed) =>
        new(vring.Num, new GuestAddress(vring.DescriptorTable), new GuestAddress(vring.AvailRing), new GuestAddress(vring.UsedRing), nextAvail, nextUsed, Ready: false, EventIdx: false, IndirectDescriptors: false);

    /// <summary>Restores the device's queue to <paramref name="state"/> and starts it; a queue the device cannot start closes the connection.</summary>
    private void Activate(VhostUserVring vring, SplitVirtqueueState state)
    {
        SplitVirtqueue queue = _device.Queues[vring.Index];

        // Before the restore: activation writes the ring (avail_event, used flags), and that is logged too.
        queue.DirtyLog = _dirtyLog.SinkFor(queue, vring.UsedLogAddress);
        if (!queue.TryRestoreState(state, out QueueError error) || !_device.ActivateQueue(vring.Index))
        {
            throw new VhostUserProtocolException($"ring {vring.Index}: the device could not start it ({(error != QueueError.None ? error : queue.Error)})");
        }
    }

    /// <summary>Serves the ring's kick fd from here on, and looks at the ring once.</summary>
    private void Serve(VhostUserVring vring, ushort nextAvail, ushort nextUsed)
    {
        vring.StartServing();
        Log.RingStarted(_logger, vring.Index, vring.Num, nextAvail, nextUsed);

        // Look at the ring once: resubmitted requests, and buffers the driver made available while
        // no back end listened, get no kick of their own.
        vring.Kick!.Signal();
    }

    /// <summary>
    /// Starts a packed ring. With an in-flight region that fits it, the region says where the ring
    /// stands and which chains an earlier back end left in flight (resubmitted first, from their copies):
    /// after a back end died, the front end's base is stale (QEMU cannot read a packed ring's positions
    /// from guest memory as it reads a split ring's used index). Without one, the base says where.
    /// </summary>
    private void StartPacked(VhostUserVring vring)
    {
        SplitVirtqueue queue = _device.Queues[vring.Index];
        PackedBase at = PackedBase.Decode(vring.Base);
        PackedRecovery? recovered = null;
        PackedInFlightTracker? tracker = null;
        if (RegionFor(vring) is InFlightRegion region && _memory.TryGetSpan(new GuestAddress(vring.DescriptorTable), vring.Num * 16, out Span<byte> ring))
        {
            tracker = new PackedInFlightTracker(region, vring.Index, vring.Num);
            recovered = tracker.Recover(ring, at, out string? why);
            if (why is not null)
            {
                Log.PackedRegionRefused(_logger, vring.Index, why);
            }

            if (recovered is not null)
            {
                at = recovered.Start;
                if (recovered.ChainLengths.Length > 0)
                {
                    Log.Resubmitting(_logger, vring.Index, recovered.ChainLengths.Length, at.UsedPosition);
                }
            }
        }

        Activate(vring, StateAt(vring, at.AvailPosition, at.UsedPosition) with
        {
            PackedRing = true,
            AvailWrapCounter = at.AvailWrapCounter,
            UsedWrapCounter = at.UsedWrapCounter,
        });

        queue.InFlightTracker = tracker;
        if (recovered is not null && queue.StaleCount > 0)
        {
            // As on a split ring: a chain still running here (it outlived the last drain) is not resubmitted.
            recovered = WithoutStale(recovered, queue);
        }

        if (recovered is { ChainLengths.Length: > 0 } && !queue.TryResubmitPacked(recovered.Descriptors, recovered.ChainLengths, out QueueError resubmitError))
        {
            Log.ResubmitRefused(_logger, vring.Index, resubmitError);
        }

        Serve(vring, at.AvailPosition, at.UsedPosition);
    }

    /// <summary>The chains of <paramref name="recovered"/> whose buffer ID (in the last descriptor) is not stale on <paramref name="queue"/>.</summary>
    private static PackedRecovery WithoutStale(PackedRecovery recovered, SplitVirtqueue queue)
    {
        var descriptors = new List<byte>();
        var lengths = new List<ushort>();
        int offset = 0;
        foreach (ushort length in recovered.ChainLengths)
        {
            ReadOnlySpan<byte> chain = recovered.Descriptors.AsSpan(offset * 16, length * 16);
            offset += length;
            if (!queue.IsStale(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(chain[((length - 1) * 16 + 12)..])))
            {
                descriptors.AddRange(chain);
                lengths.Add(length);
            }
        }

        return recovered with { Descriptors = [.. descriptors], ChainLengths = [.. lengths] };
    }

    /// <summary>
    /// Stops the ring: no more kicks served, in-flight requests finished (their completions reach
    /// the used ring, or on a broken queue at least returned to it), queue deactivated. Its next
    /// available index becomes the ring's base. The wait is bounded: a request still at the backend
    /// after it stays in flight, pinning the memory-table generation it was popped under (the next
    /// commit does not unmap under it), and its completion is dropped as stale.
    /// </summary>
    public void Stop(VhostUserVring vring)
    {
        if (!vring.Started)
        {
            return;
        }

        if (vring.StopServing() == IoThreadRunResult.TimedOut)
        {
            Log.IoThreadTimedOut(_logger, vring.Index, "stopping the kick handler", VhostUserVring.IoThreadTimeout);
        }

        // No more passes over the ring, and chains the device holds with no request in progress (net
        // receive buffers waiting for a frame) go back to the driver now: the drain does not wait for them.
        _device.QuiesceQueue(vring.Index);
        SplitVirtqueue queue = _device.Queues[vring.Index];
        long deadline = Environment.TickCount64 + (long)_drainTimeout.TotalMilliseconds;
        // Wait until every request is returned AND published: a completion leaves InFlightCount at
        // AddUsed, but used->idx moves only at the end of the deferred-call section it ran in (on the
        // I/O thread or a backend thread). Deactivating in between would refuse that publish, and the
        // request would be neither in flight nor visible to the driver: lost across the reconnect.
        if (!IsDrained(queue))
        {
            int waiting = Held(queue) - queue.StaleCount;
            Log.DrainWaiting(_logger, vring.Index, waiting);
        }

        while (!IsDrained(queue) && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(1);
        }

        if (!IsDrained(queue))
        {
            Log.StopTimedOut(_logger, vring.Index, Held(queue) - queue.StaleCount, _drainTimeout);
        }

        _device.DeactivateQueue(vring.Index);
        vring.Base = BaseOf(queue);
        queue.DirtyLog = null;
        IInFlightTracker? stoppedTracker = queue.InFlightTracker;
        queue.InFlightTracker = null;
        if (stoppedTracker is InFlightTracker tracker)
        {
            // A stale chain (it outlived a drain, its completion will be dropped) keeps its flag: a
            // later back end resubmits it.
            if (queue.InFlightCount == 0 && queue.StaleCount == 0 && TryReadUsedIdx(vring, out ushort usedIdx))
            {
                tracker.Stopped(usedIdx);
            }
        }

        Log.RingStopped(_logger, vring.Index, queue.NextAvail);
    }

    /// <summary>
    /// Whether every request the queue popped is returned and published. "Returned" is the queue's
    /// <see cref="GenerationPins.Held"/>, the very count that keeps the memory mapped, so the drain
    /// and the unmap cannot disagree; the stale chains among them (they outlived an earlier drain)
    /// are not waited for again. A broken queue publishes nothing, but its requests are still at the
    /// backend, writing into guest memory: it is drained once they are returned.
    /// </summary>
    public static bool IsDrained(SplitVirtqueue queue) =>
        Held(queue) <= queue.StaleCount && (queue.Error != QueueError.None || queue.PublishedUsed == queue.NextUsed);

    private static int Held(SplitVirtqueue queue) => queue.Pinning is GenerationPins pins ? pins.Held : queue.InFlightCount;

    /// <summary>Stops every ring, closes their fds and the in-flight region.</summary>
    public void Dispose()
    {
        StopAll();
        foreach (VhostUserVring vring in _vrings)
        {
            _notifier.SetCall(vring.Index, null);
            vring.DisposeFds();
        }

        _inFlight?.Dispose();
        _inFlight = null;
        _dirtyLog.Close(AnyHeld);
    }

    private bool TryReadUsedIdx(VhostUserVring vring, out ushort usedIdx) =>
        _memory.TryReadUInt16(new GuestAddress(vring.UsedRing + SplitRingLayout.UsedIdxOffset), out usedIdx);

    private void RequireInMemory(VhostUserVring vring, string what, ulong guest, uint length)
    {
        if (!_memory.TryGetSpan(new GuestAddress(guest), (int)length, out _))
        {
            throw new VhostUserProtocolException($"ring {vring.Index}: {what} at guest 0x{guest:x} (0x{length:x} bytes) is outside the shared memory");
        }
    }
}
