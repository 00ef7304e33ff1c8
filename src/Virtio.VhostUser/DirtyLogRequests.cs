using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Notifications;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// The requests that drive dirty logging (vhost-user.rst, "Migration"): SET_LOG_BASE (the bitmap),
/// SET_LOG_FD (its eventfd) and VHOST_F_LOG_ALL in SET_FEATURES. Each change is made with the running
/// rings drained and restarted around it: when the reply goes out, every request completed from then on
/// marks the new state, and none still marks the old one (QEMU syncs and frees a replaced log as soon as
/// SET_LOG_BASE is answered). Used on the connection's thread.
/// </summary>
internal sealed class DirtyLogRequests
{
    private readonly VringRunner _rings;
    private readonly FeatureNegotiation _features;
    private readonly bool _allowUnsealed;
    private readonly ILogger _logger;

    public DirtyLogRequests(VringRunner rings, FeatureNegotiation features, bool allowUnsealed, ILogger logger)
    {
        _rings = rings;
        _features = features;
        _allowUnsealed = allowUnsealed;
        _logger = logger;
    }

    private DirtyLog State => _rings.DirtyLog;

    /// <summary>SET_LOG_BASE: maps the bitmap and makes it the log. Its reply (a u64 0, as libvhost-user sends) is the caller's.</summary>
    public void SetLogBase(VhostUserMessage m)
    {
        if ((_features.ProtocolFeatures & VhostUserProtocolFeatures.LogSharedMemory) == 0)
        {
            throw new VhostUserProtocolException("SET_LOG_BASE without VHOST_USER_PROTOCOL_F_LOG_SHMFD negotiated (a log in the front end's own memory cannot be reached from here)");
        }

        LogDescription description = VhostUserPayloadDecoder.ReadLogDescription(m);
        DirtyLogMapping mapping = DirtyLogMapping.Map(m.TakeFd(0), description, _allowUnsealed, _logger);
        Restarting(() => State.Replace(mapping, _rings.AnyHeld));
    }

    /// <summary>SET_LOG_FD: one eventfd, signalled after each returned request's pages are marked.</summary>
    public void SetLogFd(VhostUserMessage m)
    {
        VhostUserPayloadDecoder.ReadEmptyWithFd(m);
        if (!FdKind.IsEventFd(m.PeekFd(0)))
        {
            throw new VhostUserProtocolException("SET_LOG_FD: the fd is not an eventfd");
        }

        SafeFileHandle handle = m.TakeFd(0);
        int fd = (int)handle.DangerousGetHandle();
        handle.SetHandleAsInvalid();
        EventFd kick = EventFd.FromOwnedHandle(fd);
        Restarting(() => State.SetKick(kick));
        Log.DirtyLogFdSet(_logger);
    }

    /// <summary>
    /// SET_FEATURES acknowledged or cleared VHOST_F_LOG_ALL (<see cref="FeatureNegotiation.LogAll"/>):
    /// logging follows. <paramref name="ringsStopped"/> when the caller stopped every ring anyway (new features).
    /// </summary>
    public void FeaturesSet(bool ringsStopped)
    {
        bool logAll = _features.LogAll;
        if (logAll == State.LogAll)
        {
            return;
        }

        if (ringsStopped)
        {
            State.LogAll = logAll;
            Report(0);
            return;
        }

        Restarting(() => State.LogAll = logAll);
    }

    /// <summary>
    /// Drains and stops the running rings, applies <paramref name="change"/>, starts them again. A ring
    /// stopped and restarted loses nothing (its base and the in-flight region carry it, as for a
    /// memory-table change). Only when logging was or becomes active: otherwise no ring holds a sink.
    /// </summary>
    private void Restarting(Action change)
    {
        bool before = State.Active;
        List<VhostUserVring> stopped = before ? _rings.StopStarted() : [];
        change();
        if (!before && State.Active)
        {
            stopped = _rings.StopStarted();
        }

        _rings.Restart(stopped);
        if (before != State.Active)
        {
            Report(stopped.Count);
        }
    }

    private void Report(int restarted) =>
        Log.DirtyLogging(_logger, State.Active ? "on" : "off", State.LogAll, State.Mapping is not null, restarted);
}
