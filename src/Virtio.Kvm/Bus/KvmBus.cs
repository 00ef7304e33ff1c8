using System;
using System.Threading;

namespace Virtio.Kvm.Bus;

/// <summary>
/// Routes the MMIO and PIO exits of the vCPUs to device windows: address ranges mapped to
/// <see cref="IKvmIoHandler"/>s. An access no window claims reads as all ones and its writes are
/// dropped; both are counted in <see cref="UnclaimedAccesses"/>.
/// </summary>
/// <remarks>
/// Adding windows is thread-safe and may happen while vCPUs run (the lookup table is replaced
/// atomically); lookups take no lock and allocate nothing.
/// </remarks>
public sealed class KvmBus
{
    private readonly Lock _gate = new();
    private Window[] _mmio = [];
    private Window[] _pio = [];
    private long _unclaimed;

    /// <summary>How many accesses hit no window.</summary>
    public long UnclaimedAccesses => Interlocked.Read(ref _unclaimed);

    /// <summary>Claims [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of <paramref name="space"/> for <paramref name="handler"/>.</summary>
    /// <param name="space">MMIO or PIO.</param>
    /// <param name="start">The first address (or port).</param>
    /// <param name="length">The window's size in bytes.</param>
    /// <param name="handler">Who serves the accesses.</param>
    /// <exception cref="ArgumentException">The window is empty, wraps, leaves the 16-bit port space, or overlaps another.</exception>
    public void Add(KvmIoSpace space, ulong start, ulong length, IKvmIoHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        if (start + length - 1 < start)
        {
            throw new ArgumentException("The window wraps around the address space.", nameof(length));
        }

        if (space == KvmIoSpace.Pio && start + length > 0x10000)
        {
            throw new ArgumentException("A PIO window must lie within ports 0-0xFFFF.", nameof(length));
        }

        lock (_gate)
        {
            Window[] current = space == KvmIoSpace.Mmio ? _mmio : _pio;
            int insertAt = 0;
            foreach (Window w in current)
            {
                if (start < w.Start + w.Length && w.Start < start + length)
                {
                    throw new ArgumentException($"The window 0x{start:x}+0x{length:x} overlaps 0x{w.Start:x}+0x{w.Length:x}.", nameof(start));
                }

                if (w.Start < start)
                {
                    insertAt++;
                }
            }

            var next = new Window[current.Length + 1];
            Array.Copy(current, next, insertAt);
            next[insertAt] = new Window(start, length, handler);
            Array.Copy(current, insertAt, next, insertAt + 1, current.Length - insertAt);
            if (space == KvmIoSpace.Mmio)
            {
                Volatile.Write(ref _mmio, next);
            }
            else
            {
                Volatile.Write(ref _pio, next);
            }
        }
    }

    /// <summary>Serves one access: the handler whose window holds <paramref name="address"/> gets it.</summary>
    /// <param name="space">MMIO or PIO.</param>
    /// <param name="address">The guest physical address or port.</param>
    /// <param name="data">The bytes written, or the buffer to fill for a read.</param>
    /// <param name="isWrite">Whether the guest writes.</param>
    /// <returns>True when a window claimed the access.</returns>
    public bool Dispatch(KvmIoSpace space, ulong address, Span<byte> data, bool isWrite)
    {
        Window[] windows = Volatile.Read(ref space == KvmIoSpace.Mmio ? ref _mmio : ref _pio);
        int lo = 0, hi = windows.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            Window w = windows[mid];
            if (address < w.Start)
            {
                hi = mid - 1;
            }
            else if (address - w.Start >= w.Length)
            {
                lo = mid + 1;
            }
            else
            {
                if (isWrite)
                {
                    w.Handler.Write(address - w.Start, data);
                }
                else
                {
                    w.Handler.Read(address - w.Start, data);
                }

                return true;
            }
        }

        Interlocked.Increment(ref _unclaimed);
        if (!isWrite)
        {
            data.Fill(0xFF);
        }

        return false;
    }

    private sealed record Window(ulong Start, ulong Length, IKvmIoHandler Handler);
}
