using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One connection's dirty-logging state: the bitmap of the last SET_LOG_BASE, whether VHOST_F_LOG_ALL
/// is acknowledged, the SET_LOG_FD eventfd, and each queue's <see cref="QueueDirtyLog"/>. Logging is on
/// when both the flag and a bitmap are there; a ring started then gets its queue's sink
/// (<see cref="SinkFor"/>). Every change is made with the rings stopped (the caller drains them), so an
/// I/O thread never sees a half-made switch.
/// </summary>
/// <remarks>
/// Lifetime: a replaced bitmap stays mapped until no chain is held on any queue (the rings were
/// drained, but a request that outlived the drain could still be completing); it is unmapped at the
/// next change or at <see cref="Close"/> once nothing is held, and kept (leaked, logged) otherwise.
/// Used on the connection's thread.
/// </remarks>
internal sealed class DirtyLog
{
    /// <summary>Replaced bitmaps kept mapped for requests that outlived a drain, at most.</summary>
    public const int MaxRetired = 4;

    private readonly ILogger _logger;
    private readonly QueueDirtyLog?[] _queues;
    private readonly List<DirtyLogMapping> _retired = [];
    private DirtyLogMapping? _mapping;
    private EventFd? _kick;

    public DirtyLog(int queueCount, ILogger logger)
    {
        _queues = new QueueDirtyLog?[queueCount];
        _logger = logger;
    }

    /// <summary>Whether SET_FEATURES acknowledged VHOST_F_LOG_ALL.</summary>
    public bool LogAll { get; set; }

    /// <summary>Whether rings started now log: VHOST_F_LOG_ALL and a bitmap.</summary>
    public bool Active => LogAll && _mapping is not null;

    /// <summary>The current bitmap, if any.</summary>
    public DirtyLogMapping? Mapping => _mapping;

    /// <summary>
    /// The sink for a ring about to start on <paramref name="queue"/>, or null when logging is off.
    /// <paramref name="usedLogAddress"/> is the ring's VHOST_VRING_F_LOG address (null without the flag).
    /// </summary>
    public IDirtyLog? SinkFor(SplitVirtqueue queue, ulong? usedLogAddress)
    {
        if (!Active)
        {
            return null;
        }

        // One per queue, made the first time logging starts on it: no allocation per ring start.
        QueueDirtyLog sink = _queues[queue.Index] ??= new QueueDirtyLog(queue.MaxSize);
        sink.Attach(_mapping!, usedLogAddress, _kick);
        return sink;
    }

    /// <summary>SET_LOG_BASE: <paramref name="mapping"/> replaces the bitmap (the rings are stopped); <paramref name="held"/> says whether any chain is still held.</summary>
    public void Replace(DirtyLogMapping mapping, bool held)
    {
        ReleaseRetired(held);
        if (_retired.Count >= MaxRetired)
        {
            // A request stuck at the backend keeps every replaced bitmap mapped: bound what a front end
            // replacing the log again and again can pile up.
            mapping.Dispose();
            throw new Protocol.VhostUserProtocolException($"SET_LOG_BASE: {_retired.Count} replaced logs are still mapped for a request that has not returned; refusing another");
        }

        if (_mapping is not null)
        {
            _retired.Add(_mapping);
        }

        _mapping = mapping;
        Log.DirtyLogBase(_logger, mapping.Size, mapping.Size * 8 << DirtyLogMapping.PageShift);
        ReleaseRetired(held);
    }

    /// <summary>SET_LOG_FD: signalled after each returned chain's pages are marked (the rings are stopped). Takes ownership.</summary>
    public void SetKick(EventFd kick)
    {
        _kick?.Dispose();
        _kick = kick;
    }

    /// <summary>Unmaps the replaced bitmaps when no chain is held any more.</summary>
    public void ReleaseRetired(bool held)
    {
        if (held || _retired.Count == 0)
        {
            return;
        }

        foreach (DirtyLogMapping retired in _retired)
        {
            retired.Dispose();
        }

        _retired.Clear();
    }

    /// <summary>
    /// The connection closes (its rings stopped): every bitmap is unmapped unless a chain is still held
    /// (<paramref name="held"/>), when they are left mapped for good, logged: unmapping under a request
    /// still completing could fault.
    /// </summary>
    public void Close(bool held)
    {
        if (_mapping is not null)
        {
            _retired.Add(_mapping);
            _mapping = null;
        }

        LogAll = false;
        if (held && _retired.Count > 0)
        {
            Log.DirtyLogLeftMapped(_logger, _retired.Count);
            _retired.Clear();
        }

        ReleaseRetired(held: false);
        _kick?.Dispose();
        _kick = null;
    }
}
