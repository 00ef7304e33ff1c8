using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Memory;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One version of the memory table: its regions, sorted by guest address, and a number that grows
/// by one with every replacement. Its regions never change. A generation made by
/// <see cref="VhostUserMemoryTable"/> is only prepared (its new regions mapped) until the table
/// commits it; after that it is the one the device sees until the next commit retires it.
/// </summary>
/// <remarks>
/// <para>In-flight pinning: a request the device pops while this generation is the one it sees
/// holds it (<see cref="Pin"/>, from <see cref="GenerationPins"/> at the pop, on the ring's
/// processing thread) until the device returns the request (<see cref="Unpin"/>, on whichever
/// thread completes it). A committed generation holds a reference on each of its mappings; once
/// retired and no longer pinned it lets go of them, and a mapping no other committed generation
/// holds is unmapped then, never earlier: a backend write into a request's buffers lands in the
/// mapping the request was popped under. A request that never returns keeps its generation's
/// mappings for ever (logged once, when the generation is retired with requests in flight).</para>
/// <para>The pin count and the retired flag share one word: bit 0 is "retired", the rest counts
/// pins (two per request), so the last unpin and the retire agree on who releases, lock-free and
/// allocation-free.</para>
/// </remarks>
internal sealed class MemoryTableGeneration
{
    private const long RetiredBit = 1;
    private const long PinUnit = 2;

    private readonly VhostUserMemoryRegion[] _regions;
    private long _state;
    private int _released;
    private ILogger? _logger;

    public MemoryTableGeneration(long number, VhostUserMemoryRegion[] regions)
    {
        Array.Sort(regions, static (a, b) => a.GuestAddress.CompareTo(b.GuestAddress));
        Number = number;
        _regions = regions;
        var mappings = new GuestMemoryRegion[regions.Length];
        for (int i = 0; i < regions.Length; i++)
        {
            Bytes += regions[i].Size;
            mappings[i] = regions[i].Mapping;
        }

        // GuestMemory only indexes the regions: it is never disposed, the mappings are, one by one.
        View = mappings.Length == 0 ? null : new GuestMemory(mappings);
    }

    /// <summary>0 for the empty table a connection starts with, then one more per replacement.</summary>
    public long Number { get; }

    /// <summary>The regions, sorted by guest address.</summary>
    public IReadOnlyList<VhostUserMemoryRegion> Regions => _regions;

    /// <summary>Bytes in all regions.</summary>
    public ulong Bytes { get; }

    /// <summary>The regions as guest memory (null when there are none): what the device reads through while this generation is published.</summary>
    public GuestMemory? View { get; }

    /// <summary>Requests popped under this generation and not returned yet. Any thread.</summary>
    public long InFlight => Volatile.Read(ref _state) / PinUnit;

    /// <summary>Whether <see cref="Retire"/> was called.</summary>
    public bool IsRetired => (Volatile.Read(ref _state) & RetiredBit) != 0;

    /// <summary>Whether the generation let go of its mappings (retired, nothing in flight).</summary>
    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>
    /// Translates a front-end user address to a guest physical address when [user, user + length)
    /// lies inside one region.
    /// </summary>
    public bool TryTranslateUserAddress(ulong user, ulong length, out ulong guest)
    {
        foreach (VhostUserMemoryRegion region in _regions)
        {
            ulong offset = user - region.UserAddress;
            if (user >= region.UserAddress && offset < region.Size && length <= region.Size - offset)
            {
                guest = region.GuestAddress + offset;
                return true;
            }
        }

        guest = 0;
        return false;
    }

    /// <summary>The table commits this generation: it holds each of its mappings until released. Connection thread.</summary>
    public void Acquire()
    {
        foreach (VhostUserMemoryRegion region in _regions)
        {
            region.AddReference();
        }
    }

    /// <summary>A request popped under this generation holds it. The ring's processing thread; no allocation.</summary>
    public void Pin() => Interlocked.Add(ref _state, PinUnit);

    /// <summary>A request popped under this generation is returned; the last one after <see cref="Retire"/> releases the mappings. Any thread.</summary>
    public void Unpin()
    {
        if (Interlocked.Add(ref _state, -PinUnit) == RetiredBit)
        {
            Release();
        }
    }

    /// <summary>
    /// A later generation was committed (or the connection closed): the mappings are released now
    /// when nothing is in flight, else by the last <see cref="Unpin"/>. Connection thread, after
    /// <see cref="Acquire"/> of the successor. Returns the requests still in flight.
    /// </summary>
    public long Retire(ILogger logger)
    {
        _logger = logger;
        long before = Interlocked.Or(ref _state, RetiredBit);
        if (before == 0)
        {
            Release();
        }

        return before / PinUnit;
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        int unmapped = 0;
        foreach (VhostUserMemoryRegion region in _regions)
        {
            unmapped += region.ReleaseReference() ? 1 : 0;
        }

        if (_logger is not null)
        {
            Log.GenerationReleased(_logger, Number, unmapped);
        }
    }
}
