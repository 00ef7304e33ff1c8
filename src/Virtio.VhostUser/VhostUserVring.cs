using System;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;

namespace Virtio.VhostUser;

/// <summary>
/// What one connection told the back end about one ring (size, addresses, base, kick/call fds,
/// enabled), and whether the ring is started. Changed only on the connection's thread; the kick
/// handler runs on the ring's I/O thread.
/// </summary>
internal sealed class VhostUserVring
{
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

    public VhostUserVring(VirtioDevice device, ushort index, IoThread ioThread)
    {
        Device = device;
        Index = index;
        IoThread = ioThread;
        Num = device.Queues[index].MaxSize;
    }

    public VirtioDevice Device { get; }

    public ushort Index { get; }

    public IoThread IoThread { get; }

    public ushort Num { get; set; }

    public bool HasAddresses { get; set; }

    public ulong DescriptorTable { get; set; }

    public ulong AvailRing { get; set; }

    public ulong UsedRing { get; set; }

    public ushort Base { get; set; }

    public EventFd? Kick { get; private set; }

    public EventFdGuestNotifier? Call { get; set; }

    public EventFd? Error { get; set; }

    public bool Enabled { get; set; }

    public bool Started => _registration is not null;

    private IDisposable? _registration;

    public void SetKick(EventFd? kick)
    {
        Kick?.Dispose();
        Kick = kick;
    }

    /// <summary>Starts serving the kick fd on the ring's I/O thread.</summary>
    public void StartServing()
    {
        _registration = IoThread.Register(Kick!, s_onKick, this);
    }

    /// <summary>
    /// Stops serving the kick fd and returns once no kick handler of this ring runs any more
    /// (a handler already running finishes first).
    /// </summary>
    public void StopServing()
    {
        if (_registration is null)
        {
            return;
        }

        _registration.Dispose();
        _registration = null;
        if (!IoThread.IsCurrentThread)
        {
            using var passed = new System.Threading.ManualResetEventSlim();
            IoThread.Schedule(static state => ((System.Threading.ManualResetEventSlim)state!).Set(), passed);
            passed.Wait(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>Closes the fds this ring holds. The ring is stopped.</summary>
    public void DisposeFds()
    {
        SetKick(null);
        Call?.EventFd.Dispose();
        Call = null;
        Error?.Dispose();
        Error = null;
    }
}
