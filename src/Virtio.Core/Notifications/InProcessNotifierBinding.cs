using System.Collections.Generic;
using System.Diagnostics.CodeAnalysis;
using Virtio.Core.Transport;
using Virtio.Core.Transport.Pci;

namespace Virtio.Core.Notifications;

/// <summary>
/// A host-notifier binding inside the process, for tests and for embedders without a hypervisor
/// fast path: a QueueNotify write on the virtio-mmio register file, or a doorbell write on a virtio-pci
/// function, signals the assigned event fd instead of calling the device, as a KVM ioeventfd would. It can be given a capacity to model
/// hosts with few ioeventfds.
/// </summary>
/// <remarks>Thread-safe.</remarks>
public sealed class InProcessNotifierBinding : IHostNotifierBinding
{
    private readonly Dictionary<ushort, EventFd> _assigned = new();
    private readonly object _gate = new();
    private int _capacity;

    /// <summary>Creates the binding and makes <paramref name="transport"/> route QueueNotify writes through it.</summary>
    /// <param name="transport">The register file whose notifies it catches.</param>
    /// <param name="capacity">How many notifiers it accepts at once.</param>
    public InProcessNotifierBinding(VirtioMmioTransport transport, int capacity = int.MaxValue)
    {
        System.ArgumentNullException.ThrowIfNull(transport);
        _capacity = capacity;
        transport.QueueNotifyHandler = TryNotify;
    }

    /// <summary>
    /// Creates the binding, without a capacity limit (set <see cref="Capacity"/> to model one), and makes
    /// <paramref name="function"/> route doorbell writes through it.
    /// </summary>
    /// <param name="function">The PCI function whose doorbell writes it catches.</param>
    public InProcessNotifierBinding(VirtioPciFunction function)
    {
        System.ArgumentNullException.ThrowIfNull(function);
        _capacity = int.MaxValue;
        function.QueueNotifyHandler = TryNotify;
    }

    /// <summary>How many notifiers it accepts at once; lowering it does not revoke existing ones.</summary>
    public int Capacity
    {
        get { lock (_gate) { return _capacity; } }
        set { lock (_gate) { _capacity = value; } }
    }

    /// <summary>How many notifiers are assigned now.</summary>
    public int AssignedCount
    {
        get { lock (_gate) { return _assigned.Count; } }
    }

    /// <summary>Whether a notifier is assigned for <paramref name="queueIndex"/>.</summary>
    /// <param name="queueIndex">The queue.</param>
    /// <returns>True while assigned.</returns>
    public bool IsAssigned(ushort queueIndex)
    {
        lock (_gate)
        {
            return _assigned.ContainsKey(queueIndex);
        }
    }

    /// <inheritdoc />
    public bool TryAssign(ushort queueIndex, EventFd notifier, [NotNullWhen(false)] out string? refusal)
    {
        System.ArgumentNullException.ThrowIfNull(notifier);
        lock (_gate)
        {
            if (_assigned.ContainsKey(queueIndex))
            {
                refusal = $"queue {queueIndex} already has a notifier";
                return false;
            }

            if (_assigned.Count >= _capacity)
            {
                refusal = $"no notifier slot left ({_capacity} in use)";
                return false;
            }

            _assigned.Add(queueIndex, notifier);
            refusal = null;
            return true;
        }
    }

    /// <inheritdoc />
    public void Deassign(ushort queueIndex, EventFd notifier)
    {
        lock (_gate)
        {
            if (_assigned.TryGetValue(queueIndex, out EventFd? current) && ReferenceEquals(current, notifier))
            {
                _assigned.Remove(queueIndex);
            }
        }
    }

    /// <summary>Signals the notifier of <paramref name="queueIndex"/> when one is assigned.</summary>
    /// <param name="queueIndex">The queue the guest notified.</param>
    /// <returns>True when the notify was caught; false lets the transport process it synchronously.</returns>
    public bool TryNotify(ushort queueIndex)
    {
        lock (_gate)
        {
            if (!_assigned.TryGetValue(queueIndex, out EventFd? notifier))
            {
                return false;
            }

            notifier.Signal();
            return true;
        }
    }
}
