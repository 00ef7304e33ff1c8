using System;
using System.Runtime.ExceptionServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Notifications;
using Virtio.Core.Transport.Pci;

namespace Virtio.Kvm.Notifications;

/// <summary>
/// A PCI function's MSI-X vectors on KVM: each vector is an irqfd on a GSI of its own (from a
/// <see cref="KvmGsiRouting"/>) whose route is the message the guest programmed into the vector's table
/// entry, so <see cref="Raise"/> is one eventfd write and KVM delivers the message to the local APIC.
/// </summary>
/// <remarks>
/// <para>Thread-safe. <see cref="Configure"/> runs on vCPU threads and never throws for what the guest
/// programmed: a message that is not an x86 interrupt (address outside 0xFEE00000-0xFEEFFFFF, a reserved
/// delivery mode) is not installed, its vector's route is removed, and the vector delivers nothing until
/// the guest programs a valid one (logged once per vector, counted in <see cref="RefusedMessages"/>).</para>
/// <para>A masked vector keeps its route and its irqfd: the function never raises a masked vector (it
/// holds the interrupt as the vector's pending bit), and only <see cref="Raise"/> writes the eventfd, so
/// a kept route cannot deliver. Configure therefore installs nothing while a vector is masked; the
/// message is checked and installed when the vector is unmasked (one KVM_SET_GSI_ROUTING, and none when
/// it did not change). That matches how a driver reprograms an entry (mask, write address and data,
/// unmask): the half-written messages in between are never installed, and a mask/unmask pair costs no
/// ioctl.</para>
/// <para>Dispose it after the function can no longer raise (after the device is reset and its I/O
/// threads are stopped) and before the VM.</para>
/// </remarks>
public sealed class KvmMsiXVectors : IMsiXDelivery, IDisposable
{
    /// <summary>The most entries an MSI-X table has (Table Size is 11 bits, N - 1 encoded).</summary>
    public const int MaxVectors = 2048;

    private readonly KvmGsiRouting _routing;
    private readonly ILogger _logger;
    private readonly KvmIrqFdNotifier[] _irqFds;
    private readonly VectorState[] _vectors;
    private readonly long[] _delivered;
    private readonly bool[] _deliverable;
    private readonly Lock _gate = new();
    private long _dropped;
    private long _refused;
    private int _outOfRangeLogged;
    private bool _disposed;

    /// <summary>Allocates <paramref name="vectorCount"/> GSIs from <paramref name="routing"/> and registers an irqfd on each; no vector is routed until the guest configures it.</summary>
    /// <param name="routing">The VM's routing table owner.</param>
    /// <param name="vectorCount">The function's MSI-X Table Size, 1 to <see cref="MaxVectors"/>.</param>
    /// <param name="logger">Where refused messages are logged.</param>
    /// <exception cref="ArgumentOutOfRangeException">The vector count is out of range.</exception>
    /// <exception cref="InvalidOperationException">The routing table has no room for that many GSIs.</exception>
    /// <exception cref="KvmException">KVM_IRQFD failed (EINVAL without an irqchip); whatever was registered is undone.</exception>
    public KvmMsiXVectors(KvmGsiRouting routing, int vectorCount, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(routing);
        ArgumentOutOfRangeException.ThrowIfLessThan(vectorCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(vectorCount, MaxVectors);
        _routing = routing;
        _logger = logger ?? NullLogger.Instance;
        _irqFds = new KvmIrqFdNotifier[vectorCount];
        _vectors = new VectorState[vectorCount];
        _delivered = new long[vectorCount];
        _deliverable = new bool[vectorCount];
        uint[] gsis = new uint[vectorCount];
        int registered = 0;
        int allocated = 0;
        try
        {
            for (; allocated < vectorCount; allocated++)
            {
                gsis[allocated] = routing.AllocateMsiGsi();
            }

            for (; registered < vectorCount; registered++)
            {
                _irqFds[registered] = KvmIrqFdNotifier.Create(routing.Vm, gsis[registered]);
            }
        }
        catch
        {
            for (int i = 0; i < registered; i++)
            {
                _irqFds[i].Dispose();
            }

            routing.ReleaseMsiGsis(gsis.AsSpan(0, allocated));
            throw;
        }
    }

    /// <summary>How many vectors there are.</summary>
    public int Count => _irqFds.Length;

    /// <summary>
    /// How many <see cref="Raise"/> calls found a vector with nothing to deliver to: a vector past
    /// <see cref="Count"/>, one not configured yet, one whose message was refused or whose route
    /// failed, or any after <see cref="Dispose"/>.
    /// </summary>
    public long DroppedRaises => Interlocked.Read(ref _dropped);

    /// <summary>How many unmasked messages were refused as no x86 interrupt.</summary>
    public long RefusedMessages
    {
        get { lock (_gate) { return _refused; } }
    }

    /// <summary>The GSI of vector <paramref name="vector"/>'s irqfd.</summary>
    /// <param name="vector">The vector.</param>
    /// <returns>The GSI.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No such vector.</exception>
    public uint GsiOf(ushort vector) => _irqFds[CheckVector(vector)].Gsi;

    /// <summary>How many interrupts vector <paramref name="vector"/> delivered: its <see cref="Raise"/> calls that wrote the irqfd (calls inside one deferred-call section coalesce into one write, but each counts). Any thread may read it.</summary>
    /// <param name="vector">The vector.</param>
    /// <returns>The count.</returns>
    /// <exception cref="ArgumentOutOfRangeException">No such vector.</exception>
    public long Delivered(ushort vector) => Interlocked.Read(ref _delivered[CheckVector(vector)]);

    /// <inheritdoc />
    /// <remarks>Never throws for the guest's message; see the class remarks for what is installed when.</remarks>
    public void Configure(ushort vector, MsiMessage message, bool masked)
    {
        if (vector >= _vectors.Length)
        {
            if (Interlocked.Exchange(ref _outOfRangeLogged, 1) == 0)
            {
                Log.MsiVectorOutOfRange(_logger, vector, _vectors.Length);
            }

            return;
        }

        lock (_gate)
        {
            ref VectorState state = ref _vectors[vector];
            if (_disposed || masked)
            {
                return;
            }

            if (state.Installed == message)
            {
                Volatile.Write(ref _deliverable[vector], true);
                return;
            }

            uint gsi = _irqFds[vector].Gsi;
            if (X86Msi.Refusal(message) is { } reason)
            {
                Volatile.Write(ref _deliverable[vector], false);
                _refused++;
                if (!state.RefusalLogged)
                {
                    state.RefusalLogged = true;
                    Log.MsiMessageRefused(_logger, vector, gsi, message.Address, message.Data, reason);
                }

                Route(vector, gsi, null, ref state);
                return;
            }

            Route(vector, gsi, message, ref state);
        }
    }

    /// <inheritdoc />
    /// <remarks>One eventfd write (deferred to the end of the caller's deferred-call section, if any), no other system call, no allocation, no lock.</remarks>
    public void Raise(ushort vector)
    {
        if (vector >= _deliverable.Length || !Volatile.Read(ref _deliverable[vector]))
        {
            Interlocked.Increment(ref _dropped);
            return;
        }

        Interlocked.Increment(ref _delivered[vector]);
        _irqFds[vector].Notify(InterruptReason.UsedBuffer, vector);
    }

    /// <summary>Deassigns every vector's irqfd, closes the eventfds, and gives the GSIs back to the routing table (removing their routes).</summary>
    /// <exception cref="KvmException">A deassign or the final install failed; everything else is still undone.</exception>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            Array.Clear(_deliverable);
        }

        ExceptionDispatchInfo? failure = null;
        uint[] gsis = new uint[_irqFds.Length];
        for (int i = 0; i < _irqFds.Length; i++)
        {
            gsis[i] = _irqFds[i].Gsi;
            try
            {
                _irqFds[i].Dispose();
            }
            catch (KvmException e)
            {
                failure ??= ExceptionDispatchInfo.Capture(e);
            }
        }

        try
        {
            _routing.ReleaseMsiGsis(gsis);
        }
        catch (KvmException e)
        {
            failure ??= ExceptionDispatchInfo.Capture(e);
        }

        failure?.Throw();
    }

    private int CheckVector(ushort vector)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(vector, _irqFds.Length);
        return vector;
    }

    /// <summary>Installs <paramref name="message"/> as the vector's route, or with null removes it; a failed install is logged and leaves the vector undeliverable.</summary>
    private void Route(ushort vector, uint gsi, MsiMessage? message, ref VectorState state)
    {
        try
        {
            if (message is { } m)
            {
                _routing.SetMsiRoute(gsi, m.Address, m.Data);
                Log.MsiRouted(_logger, vector, gsi, m.Address, m.Data);
            }
            else
            {
                _routing.RemoveMsiRoute(gsi);
            }

            state.Installed = message;
            Volatile.Write(ref _deliverable[vector], message is not null);
        }
        catch (KvmException e)
        {
            // The routing table kept the vector's previous route; Raise drops until a reprogram succeeds.
            Volatile.Write(ref _deliverable[vector], false);
            state.Installed = null;
            Log.MsiRouteFailed(_logger, vector, gsi, e);
        }
    }

    /// <summary>What the routing table holds for one vector (guarded by the lock).</summary>
    private struct VectorState
    {
        /// <summary>The message its route delivers now, or null when it has none.</summary>
        public MsiMessage? Installed;

        /// <summary>Whether a refusal of this vector was logged.</summary>
        public bool RefusalLogged;
    }
}
