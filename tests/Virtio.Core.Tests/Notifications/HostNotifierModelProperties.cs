using System;
using System.IO;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

/// <summary>
/// A model-based test of the host-notifier state machine: random sequences of status writes,
/// queue ready, pause/resume, external acquire/release, reset, guest kicks, binding refusals,
/// revocation and restore run against the real controller and a small reference model.
/// </summary>
[Collection(FdCountingGroup.Name)]
public sealed class HostNotifierModelProperties
{
    private enum Op
    {
        Probe, Reset, QueueOff, QueueOn, Pause, Resume, Acquire, Release, Kick, Kick2, RefuseAll, AllowOne, Revoke, Restore,
    }

    /// <summary>
    /// After every step the controller's state equals the model's; an event fd is assigned in the
    /// binding exactly while Assigned or OffLimits (in OffLimits the binding keeps signalling it for
    /// the external user); every kick of a live queue is processed, by exactly one path at a time;
    /// and no fd leaks.
    /// </summary>
    [RingProperty(MaxTest = 300)]
    public Property StateMachine_MatchesTheModel(byte[] script)
    {
        int fdsBefore = CountFds();
        var model = new Model();
        using (var rig = new NotifierRig(capacity: 1))
        {
            EventFd? external = null;
            bool pendingInFd = false;
            int step = 0;
            foreach (byte raw in script)
            {
                var op = (Op)(raw % 14);
                step++;
                switch (op)
                {
                    case Op.Probe:
                        rig.Probe(); // a reset first, then the probe
                        pendingInFd = false;
                        model.Live = model.Ready = false;
                        model.Settle();
                        model.Live = true;
                        model.Ready = true;
                        break;
                    case Op.Reset:
                        rig.Mmio.Status = DeviceStatus.None;
                        model.Live = model.Ready = false;
                        pendingInFd = false;
                        break;
                    case Op.QueueOff when model.Live:
                        rig.Mmio.Write(VirtioMmioRegister.QueueSel, 0);
                        rig.Mmio.Write(VirtioMmioRegister.QueueReady, 0);
                        model.Ready = false;
                        pendingInFd = false;
                        break;
                    case Op.QueueOn when model.Live:
                        rig.Mmio.Write(VirtioMmioRegister.QueueSel, 0);
                        rig.Mmio.Write(VirtioMmioRegister.QueueReady, 1);
                        model.Ready = true;
                        break;
                    case Op.Pause:
                        rig.Controller.Pause();
                        model.Paused = true;
                        break;
                    case Op.Resume:
                        rig.Controller.Resume();
                        model.Paused = false;
                        break;
                    case Op.Acquire:
                        EventFd? fd = rig.Controller.AcquireForExternalUser(0);
                        bool granted = model.Acquire();
                        if ((fd is not null) != granted)
                        {
                            return false.Label($"step {step}: acquire granted {fd is not null}, model {granted}");
                        }

                        external = fd;
                        break;
                    case Op.Release:
                        bool wasOffLimits = model.State == HostNotifierState.OffLimits;
                        rig.Controller.ReleaseFromExternalUser(0);
                        model.Release();
                        if (wasOffLimits && pendingInFd && !TakeBack(rig, ref pendingInFd))
                        {
                            return false.Label($"step {step}: a kick left in the external user's fd was lost at release");
                        }

                        if (model.State != HostNotifierState.OffLimits)
                        {
                            external = null;
                        }

                        break;
                    case Op.Kick:
                    case Op.Kick2:
                        if (rig.Guest.NumFree == 0)
                        {
                            break;
                        }

                        rig.Kick();
                        if (model.Live && model.Ready)
                        {
                            if (model.State == HostNotifierState.OffLimits && op == Op.Kick2)
                            {
                                // The external user leaves this kick unread: whoever takes the notifier
                                // back must find it.
                                pendingInFd = true;
                                break;
                            }

                            if (model.State == HostNotifierState.OffLimits)
                            {
                                // The external user reads its fd and serves the queue.
                                if (external is null || !external.TryConsume(out _))
                                {
                                    return false.Label($"step {step}: kick did not reach the external user");
                                }

                                rig.Device.NotifyQueue(0);
                                pendingInFd = false;
                            }

                            if (rig.WaitAndConsume() < 1)
                            {
                                return false.Label($"step {step}: kick not processed");
                            }
                        }

                        break;
                    case Op.RefuseAll:
                        rig.Binding.Capacity = 0;
                        model.Capacity = 0;
                        break;
                    case Op.AllowOne:
                        rig.Binding.Capacity = 1;
                        rig.Controller.Refresh();
                        model.Capacity = 1;
                        model.Revoked = false;
                        break;
                    case Op.Revoke:
                        rig.Controller.Revoke(0);
                        model.Revoked = true;
                        break;
                    case Op.Restore:
                        // Save/restore: the controller goes away (an external user loses the notifier),
                        // and a new one is attached to the device as it is now.
                        bool hadPending = model.State == HostNotifierState.OffLimits && pendingInFd;
                        rig.Controller.Dispose();
                        external = null;
                        if (hadPending && !TakeBack(rig, ref pendingInFd))
                        {
                            return false.Label($"step {step}: a kick left in the external user's fd was lost at restore");
                        }

                        model.Shutdown();
                        rig.Controller = new HostNotifierController(rig.Device, rig.Binding, [rig.IoThread], rig.Logger, paused: model.Paused);
                        model.Revoked = false;
                        break;
                }

                model.Settle();
                HostNotifierState actual = rig.State;
                if (actual != model.State)
                {
                    return false.Label($"step {step} ({op}): state {actual}, model {model.State}");
                }

                bool assigned = rig.Binding.IsAssigned(0);
                if (assigned != (actual != HostNotifierState.Deassigned))
                {
                    return false.Label($"step {step} ({op}): binding assigned {assigned} in state {actual}");
                }

                if (rig.Device.ConcurrentProcessing != 0)
                {
                    return false.Label($"step {step} ({op}): the queue was processed on two threads at once");
                }
            }
        }

        int fdsAfter = CountFds();
        return (fdsAfter == fdsBefore).Label($"fd leak: {fdsBefore} before, {fdsAfter} after");
    }

    private static bool TakeBack(NotifierRig rig, ref bool pendingInFd)
    {
        pendingInFd = false;
        return rig.WaitAndConsume() >= 1;
    }

    private static int CountFds()
    {
        // Finalizers of handles dropped by earlier cases must not move the count mid-case.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return Directory.GetFiles("/proc/self/fd").Length;
    }

    /// <summary>The reference: what the state should be, from the conditions alone.</summary>
    private sealed class Model
    {
        public bool Live { get; set; }

        public bool Ready { get; set; }

        public bool Paused { get; set; }

        public bool Revoked { get; set; }

        public int Capacity { get; set; } = 1;

        public HostNotifierState State { get; private set; }

        private bool Wanted => Live && Ready && !Paused && !Revoked;

        public void Settle()
        {
            if (State == HostNotifierState.Deassigned && Wanted && Capacity > 0)
            {
                State = HostNotifierState.Assigned;
            }
            else if (State == HostNotifierState.Assigned && !Wanted)
            {
                State = HostNotifierState.Deassigned;
                Settle();
            }
        }

        public bool Acquire()
        {
            switch (State)
            {
                case HostNotifierState.Deassigned when Capacity == 0:
                    return false;
                default:
                    State = HostNotifierState.OffLimits;
                    return true;
            }
        }

        public void Release()
        {
            if (State == HostNotifierState.OffLimits)
            {
                State = Wanted ? HostNotifierState.Assigned : HostNotifierState.Deassigned;
            }
        }

        public void Shutdown() => State = HostNotifierState.Deassigned;
    }
}
