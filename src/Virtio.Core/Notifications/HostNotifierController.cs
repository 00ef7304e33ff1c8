using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Devices;
using Virtio.Core.Threading;

namespace Virtio.Core.Notifications;

/// <summary>
/// Runs the host-notifier state machine of every virtqueue of one device (docs/notifications.md):
/// a queue is Assigned (kicks signal an event fd served by an <see cref="IoThread"/>) while the
/// device is live, the queue ready, the VM running and the binding accepts the notifier, and
/// Deassigned (kicks processed synchronously by the transport) otherwise; an external user can
/// take a queue's notifier (OffLimits) and hand it back.
/// </summary>
/// <remarks>
/// <para>Transitions are driven by the device's <see cref="VirtioDevice.StateChanged"/> and
/// <see cref="VirtioDevice.Resetting"/> events (on the transport's thread) and by the control calls
/// here (any thread, one at a time). Leaving Assigned happens on the queue's I/O thread: the
/// handler is removed, the binding deassigned, and the event fd drained once; a kick found there
/// is processed, so a kick that raced the transition is never lost and the synchronous and event
/// fd paths are never live together.</para>
/// <para>The I/O threads must be started before the driver sets DRIVER_OK, and outlive this object.</para>
/// </remarks>
public sealed class HostNotifierController : IDisposable
{
    private static readonly TimeSpan TransitionTimeout = TimeSpan.FromSeconds(30);

    private readonly VirtioDevice _device;
    private readonly IHostNotifierBinding _binding;
    private readonly IReadOnlyList<IoThread> _ioThreads;
    private readonly ILogger _logger;
    private readonly QueueNotifier[] _queues;
    private readonly object _gate = new();
    private bool _paused;
    private bool _disposed;

    /// <summary>Attaches the state machine to <paramref name="device"/>.</summary>
    /// <param name="device">The device whose queues it serves.</param>
    /// <param name="binding">Where notifiers are assigned (KVM ioeventfd, or in-process).</param>
    /// <param name="ioThreads">Queue i is served by ioThreads[i % Count]: one per queue, or one shared.</param>
    /// <param name="logger">Where refusals and transitions are logged.</param>
    /// <param name="paused">Whether the VM is paused now (a device restored into a stopped VM): nothing is Assigned until <see cref="Resume"/>.</param>
    public HostNotifierController(VirtioDevice device, IHostNotifierBinding binding, IReadOnlyList<IoThread> ioThreads, ILogger? logger = null, bool paused = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(binding);
        ArgumentNullException.ThrowIfNull(ioThreads);
        if (ioThreads.Count == 0)
        {
            throw new ArgumentException("At least one I/O thread is needed.", nameof(ioThreads));
        }

        _device = device;
        _binding = binding;
        _ioThreads = ioThreads;
        _logger = logger ?? NullLogger.Instance;
        _paused = paused;
        _queues = new QueueNotifier[device.Queues.Count];
        for (int i = 0; i < _queues.Length; i++)
        {
            _queues[i] = new QueueNotifier(this, (ushort)i, ioThreads[i % ioThreads.Count]);
        }

        device.StateChanged += OnDeviceStateChanged;
        device.Resetting += OnDeviceResetting;
        Refresh();
    }

    /// <summary>Whether the VM is paused (no queue is Assigned while paused).</summary>
    public bool IsPaused
    {
        get { lock (_gate) { return _paused; } }
    }

    /// <summary>The state of queue <paramref name="queueIndex"/>'s notifier.</summary>
    /// <param name="queueIndex">The queue.</param>
    /// <returns>Its state.</returns>
    public HostNotifierState GetState(ushort queueIndex)
    {
        lock (_gate)
        {
            return _queues[queueIndex].State;
        }
    }

    /// <summary>The VM stops running: every Assigned queue goes back to Deassigned (drained first).</summary>
    public void Pause()
    {
        lock (_gate)
        {
            _paused = true;
            EvaluateAll();
        }
    }

    /// <summary>The VM runs again: queues whose conditions hold are Assigned again.</summary>
    public void Resume()
    {
        lock (_gate)
        {
            _paused = false;
            EvaluateAll();
        }
    }

    /// <summary>
    /// The binding needs queue <paramref name="queueIndex"/>'s slot back (it has no capacity left):
    /// the queue goes to Deassigned and stays on the synchronous path until <see cref="Refresh"/>.
    /// </summary>
    /// <param name="queueIndex">The queue.</param>
    public void Revoke(ushort queueIndex)
    {
        lock (_gate)
        {
            _queues[queueIndex].Revoked = true;
            _queues[queueIndex].Evaluate();
        }
    }

    /// <summary>
    /// Re-evaluates every queue: clears revocations and retries refused assignments. Call it after
    /// restoring a device's state or when the binding gained capacity.
    /// </summary>
    public void Refresh()
    {
        lock (_gate)
        {
            foreach (QueueNotifier queue in _queues)
            {
                queue.Revoked = false;
                queue.RefusalLogged = false;
            }

            EvaluateAll();
        }
    }

    /// <summary>
    /// Hands queue <paramref name="queueIndex"/>'s notifier to an external user (a vhost-style back
    /// end that reads the event fd and processes the queue itself): the queue becomes OffLimits and
    /// the device stops serving it. From Deassigned the notifier is assigned first.
    /// </summary>
    /// <param name="queueIndex">The queue.</param>
    /// <returns>The event fd the binding signals on a kick, or null when the binding refused it.</returns>
    public EventFd? AcquireForExternalUser(ushort queueIndex)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _queues[queueIndex].Acquire();
        }
    }

    /// <summary>The external user gives the notifier back: the queue returns to Assigned (or Deassigned if its conditions no longer hold), and a kick left in the event fd is processed.</summary>
    /// <param name="queueIndex">The queue.</param>
    public void ReleaseFromExternalUser(ushort queueIndex)
    {
        lock (_gate)
        {
            _queues[queueIndex].Release();
        }
    }

    /// <summary>Deassigns every notifier (draining them), detaches from the device and closes the event fds.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _device.StateChanged -= OnDeviceStateChanged;
            _device.Resetting -= OnDeviceResetting;
            foreach (QueueNotifier queue in _queues)
            {
                queue.Shutdown();
            }
        }
    }

    private void OnDeviceStateChanged(VirtioDevice device)
    {
        lock (_gate)
        {
            EvaluateAll();
        }
    }

    private void OnDeviceResetting(VirtioDevice device)
    {
        // Stop and drain while the device is still live, so a pending kick is served before the
        // reset clears the queues; afterwards StateChanged finds nothing wanted.
        lock (_gate)
        {
            foreach (QueueNotifier queue in _queues)
            {
                if (queue.State == HostNotifierState.Assigned)
                {
                    queue.LeaveAssigned(deassignBinding: true);
                }
            }
        }
    }

    private void EvaluateAll()
    {
        if (_disposed)
        {
            return;
        }

        foreach (QueueNotifier queue in _queues)
        {
            queue.Evaluate();
        }
    }

    /// <summary>One queue's notifier. Every member runs under the controller's lock.</summary>
    private sealed class QueueNotifier(HostNotifierController owner, ushort index, IoThread ioThread)
    {
        private EventFd? _eventFd;
        private IDisposable? _registration;
        private IDisposable? _poller;
        private Func<bool>? _poll;

        public HostNotifierState State { get; private set; }

        public bool Revoked { get; set; }

        public bool RefusalLogged { get; set; }

        private bool Wanted =>
            !owner._paused && !Revoked && owner._device.IsLive && owner._device.Queues[index].IsReady;

        public void Evaluate()
        {
            switch (State)
            {
                case HostNotifierState.Deassigned when Wanted:
                    if (TryAssignBinding())
                    {
                        StartServing();
                        State = HostNotifierState.Assigned;
                        Log.NotifierTransition(owner._logger, index, HostNotifierState.Deassigned, HostNotifierState.Assigned);
                    }

                    break;
                case HostNotifierState.Assigned when !Wanted:
                    LeaveAssigned(deassignBinding: true);
                    break;
            }
        }

        public EventFd? Acquire()
        {
            switch (State)
            {
                case HostNotifierState.OffLimits:
                    return _eventFd;
                case HostNotifierState.Deassigned:
                    if (!TryAssignBinding())
                    {
                        return null;
                    }

                    break;
                case HostNotifierState.Assigned:
                    // Stop serving on the I/O thread, keep the binding: the external user reads the fd now.
                    RunOnIoThread(StopServing);
                    break;
            }

            Log.NotifierTransition(owner._logger, index, State, HostNotifierState.OffLimits);
            State = HostNotifierState.OffLimits;
            return _eventFd;
        }

        public void Release()
        {
            if (State != HostNotifierState.OffLimits)
            {
                return;
            }

            if (Wanted)
            {
                StartServing();
                State = HostNotifierState.Assigned;

                // A kick the external user left unread is served by the (level-triggered) handler; make
                // sure by scheduling one check of the fd as well.
                RunOnIoThread(DrainAndProcess);
            }
            else
            {
                owner._binding.Deassign(index, _eventFd!);
                State = HostNotifierState.Deassigned;
                DrainAndProcess();
            }

            Log.NotifierTransition(owner._logger, index, HostNotifierState.OffLimits, State);
        }

        public void LeaveAssigned(bool deassignBinding)
        {
            HostNotifierState before = State;
            RunOnIoThread(() =>
            {
                StopServing();
                if (deassignBinding)
                {
                    owner._binding.Deassign(index, _eventFd!);
                }

                // From here the transport processes kicks synchronously; one that raced us is in the fd.
                DrainAndProcess();
            });
            State = HostNotifierState.Deassigned;
            Log.NotifierTransition(owner._logger, index, before, State);
        }

        public void Shutdown()
        {
            switch (State)
            {
                case HostNotifierState.Assigned:
                    LeaveAssigned(deassignBinding: true);
                    break;
                case HostNotifierState.OffLimits:
                    owner._binding.Deassign(index, _eventFd!);
                    State = HostNotifierState.Deassigned;
                    DrainAndProcess(); // a kick the external user left unread
                    break;
            }

            _eventFd?.Dispose();
            _eventFd = null;
        }

        private bool TryAssignBinding()
        {
            _eventFd ??= EventFd.Create();
            if (owner._binding.TryAssign(index, _eventFd, out string? refusal))
            {
                RefusalLogged = false;
                return true;
            }

            // Not an error for the guest: the queue keeps working through the synchronous path.
            if (!RefusalLogged)
            {
                RefusalLogged = true;
                Log.NotifierRefused(owner._logger, index, refusal);
            }

            return false;
        }

        private void StartServing()
        {
            _registration = ioThread.Register(_eventFd!, static state => ((QueueNotifier)state!).DrainAndProcess(), this);

            // While the I/O thread polls (IoThread.PollingDuration), it also looks at the ring itself.
            _poller = ioThread.RegisterPoller(_poll ??= Poll);
        }

        private void StopServing()
        {
            _registration?.Dispose();
            _registration = null;
            _poller?.Dispose();
            _poller = null;
        }

        /// <summary>A kick found by looking at avail->idx while the I/O thread polls: processed as one.</summary>
        private bool Poll() => owner._device.PollQueue(index);

        private void DrainAndProcess()
        {
            if (_eventFd is { } fd && fd.TryConsume(out _))
            {
                Process();
            }
        }

        private void Process()
        {
            // One section per wake-up: a burst of completions raises one interrupt per queue.
            using DeferredCallSection section = DeferredCalls.Section(owner._logger);
            owner._device.NotifyQueue(index);
        }

        private void RunOnIoThread(Action action)
        {
            switch (ioThread.RunAndWait(static work => ((Action)work!)(), action, TransitionTimeout))
            {
                case IoThreadRunResult.Stopped:
                    // The I/O thread has stopped: nothing runs there any more, so it is safe here.
                    action();
                    break;
                case IoThreadRunResult.TimedOut:
                    Log.NotifierTransitionTimedOut(owner._logger, index, ioThread.Name);
                    break;
            }
        }
    }
}
