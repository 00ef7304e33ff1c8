using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Core.Memory;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One connection's memory table: owns the mappings of the regions the front end shared and their
/// lifetime. A change is made in two steps: <c>Prepare*</c> checks the new regions against their
/// files and the table and maps them, returning the next <see cref="MemoryTableGeneration"/>
/// (nothing the device sees has changed, and a protocol error leaves nothing mapped); the caller
/// stops the rings, then <see cref="Commit"/> publishes it to <see cref="VhostUserMemory"/> and
/// retires the old generation, which unmaps what the new one has not once the last request popped
/// under it returned (see <see cref="MemoryTableGeneration"/>). Used on the connection's thread.
/// </summary>
internal sealed class VhostUserMemoryTable : IDisposable
{
    /// <summary>How many memory regions ADD_MEM_REG may build up (GET_MAX_MEM_SLOTS).</summary>
    public const int MaxMemSlots = 32;

    /// <summary>The default bound on the bytes one connection's table may map (1 TiB).</summary>
    public const ulong DefaultMaxBytes = 1ul << 40;

    private readonly VhostUserMemory _view;
    private readonly ILogger _logger;
    private readonly ulong _maxBytes;
    private readonly bool _allowUnsealed;
    private MemoryTableGeneration _current = new(0, []);

    /// <param name="view">The memory the device sees.</param>
    /// <param name="logger">Where table changes are logged.</param>
    /// <param name="maxBytes">The most bytes all regions together may map (a sparse memfd costs no memory, but address space).</param>
    /// <param name="allowUnsealed">Whether a region's fd may lack F_SEAL_SHRINK (a trusted front end's file backend).</param>
    public VhostUserMemoryTable(VhostUserMemory view, ILogger logger, ulong maxBytes = DefaultMaxBytes, bool allowUnsealed = false)
    {
        _view = view;
        _logger = logger;
        _maxBytes = maxBytes;
        _allowUnsealed = allowUnsealed;
    }

    /// <summary>The committed generation, the one the device sees.</summary>
    public MemoryTableGeneration Current => _current;

    /// <summary>SET_MEM_TABLE: maps a whole new table.</summary>
    public MemoryTableGeneration PrepareReplace(VhostUserMessage m, MemoryRegionDescription[] regions)
    {
        ulong total = 0;
        foreach (MemoryRegionDescription region in regions)
        {
            total = AddSaturating(total, region.Size);
        }

        CheckBound(m.Request, total, regions.Length);
        var mapped = new VhostUserMemoryRegion[regions.Length];
        try
        {
            for (int i = 0; i < regions.Length; i++)
            {
                mapped[i] = Map(m, regions[i], i, i, mapped.AsSpan(0, i));
            }
        }
        catch
        {
            foreach (VhostUserMemoryRegion? region in mapped)
            {
                region?.Mapping.Dispose();
            }

            throw;
        }

        return new MemoryTableGeneration(_current.Number + 1, mapped);
    }

    /// <summary>ADD_MEM_REG: the current regions and one more, mapped from the message's fd.</summary>
    public MemoryTableGeneration PrepareAdd(VhostUserMessage m, MemoryRegionDescription region)
    {
        IReadOnlyList<VhostUserMemoryRegion> current = _current.Regions;
        if (current.Count >= MaxMemSlots)
        {
            throw new VhostUserProtocolException($"ADD_MEM_REG: all {MaxMemSlots} memory slots are in use");
        }

        CheckBound(m.Request, AddSaturating(_current.Bytes, region.Size), current.Count + 1);
        var regions = new VhostUserMemoryRegion[current.Count + 1];
        for (int i = 0; i < current.Count; i++)
        {
            regions[i] = current[i];
        }

        regions[^1] = Map(m, region, 0, 0, regions.AsSpan(0, current.Count));
        return new MemoryTableGeneration(_current.Number + 1, regions);
    }

    /// <summary>REM_MEM_REG: the current regions but the one with exactly these guest address, size and user address.</summary>
    public MemoryTableGeneration PrepareRemove(MemoryRegionDescription region)
    {
        IReadOnlyList<VhostUserMemoryRegion> current = _current.Regions;
        var kept = new List<VhostUserMemoryRegion>(current.Count);
        bool found = false;
        foreach (VhostUserMemoryRegion candidate in current)
        {
            if (!found && candidate.GuestAddress == region.GuestAddress && candidate.Size == region.Size && candidate.UserAddress == region.UserAddress)
            {
                found = true;
                continue;
            }

            kept.Add(candidate);
        }

        if (!found)
        {
            throw new VhostUserProtocolException($"REM_MEM_REG: no region at guest 0x{region.GuestAddress:x} of 0x{region.Size:x} bytes (user 0x{region.UserAddress:x})");
        }

        return new MemoryTableGeneration(_current.Number + 1, kept.ToArray());
    }

    /// <summary>
    /// Makes <paramref name="next"/>, prepared from the current generation, the one the device sees,
    /// and retires the old one. The caller has stopped (drained) every ring, but a request that
    /// outlived the drain still pins the old generation: the regions <paramref name="next"/> dropped
    /// are unmapped when it returns, not now.
    /// </summary>
    public void Commit(MemoryTableGeneration next)
    {
        if (next.Number != _current.Number + 1)
        {
            throw new InvalidOperationException($"Generation {next.Number} was not prepared from the current generation {_current.Number}.");
        }

        Swap(next);
        Log.MemoryTable(_logger, next.Regions.Count, next.Bytes);
    }

    /// <summary>Translates a front-end user address through the committed generation.</summary>
    public bool TryTranslateUserAddress(ulong user, ulong length, out ulong guest) => _current.TryTranslateUserAddress(user, length, out guest);

    /// <summary>Unmaps everything (the rings are stopped): the device sees no memory until the next connection's table.</summary>
    public void Dispose() => Swap(new MemoryTableGeneration(_current.Number + 1, []));

    private void Swap(MemoryTableGeneration next)
    {
        // The successor holds the mappings it keeps before the old generation lets go of them.
        MemoryTableGeneration old = _current;
        next.Acquire();
        _current = next;
        _view.Publish(next);
        long inFlight = old.Retire(_logger);
        if (inFlight > 0)
        {
            Log.GenerationRetiredInFlight(_logger, old.Number, inFlight);
        }
    }

    /// <summary>A sum of region sizes that saturates instead of wrapping (each size is below 2^64, the sum need not be).</summary>
    private static ulong AddSaturating(ulong a, ulong b) => a > ulong.MaxValue - b ? ulong.MaxValue : a + b;

    /// <summary>The table would map <paramref name="total"/> bytes in <paramref name="count"/> regions: refused over the bound.</summary>
    private void CheckBound(VhostUserRequest request, ulong total, int count)
    {
        if (total > _maxBytes)
        {
            throw new VhostUserProtocolException($"{request}: {count} region(s) of 0x{total:x} bytes in all, over this server's bound of 0x{_maxBytes:x} bytes (MaxGuestMemoryBytes)");
        }
    }

    /// <summary>Checks one region against the file it maps and the other regions, then maps it.</summary>
    private VhostUserMemoryRegion Map(VhostUserMessage m, MemoryRegionDescription region, int index, int fdIndex, ReadOnlySpan<VhostUserMemoryRegion> others)
    {
        string where = region.Describe(m.Request, index);
        foreach (VhostUserMemoryRegion other in others)
        {
            if (other.GuestOverlaps(region.GuestAddress, region.Size))
            {
                throw new VhostUserProtocolException($"{where}: overlaps the region at guest 0x{other.GuestAddress:x} (0x{other.Size:x} bytes)");
            }

            if (other.UserOverlaps(region.UserAddress, region.Size))
            {
                throw new VhostUserProtocolException($"{where}: its user addresses overlap the region at user 0x{other.UserAddress:x}");
            }
        }

        SafeFileHandle fd = m.TakeFd(fdIndex);
        try
        {
            // Seals first, then the size: once the file cannot shrink, fstat's size is a floor for
            // ever. Without the seal the front end could ftruncate it under the mapping and the
            // next access (a kick) would kill this process with SIGBUS.
            if (!FileSeals.CannotShrink(fd, out int seals) && !_allowUnsealed)
            {
                throw new VhostUserProtocolException($"{where}: the fd is not sealed against shrinking ({FileSeals.Describe(seals)}); it could be truncated under the mapping. Share a memfd with F_SEAL_SHRINK (QEMU's memory-backend-memfd seals by default) or allow unsealed memory for a trusted front end");
            }

            long fileSize = FileStat.Size(fd);
            if (fileSize < 0 || (ulong)fileSize < region.MmapOffset + region.Size)
            {
                // Mapping past the end of the file would succeed and then fault on first access.
                throw new VhostUserProtocolException($"{where}: the file is {fileSize} bytes, shorter than offset + size");
            }

            int dup = LibC.fcntl((int)fd.DangerousGetHandle(), LibC.F_DUPFD_CLOEXEC, 0);
            if (dup < 0)
            {
                throw new VhostUserProtocolException($"{where}: cannot duplicate the fd (errno {LibC.errno})");
            }

            GuestMemoryRegion mapping;
            try
            {
                mapping = GuestMemoryRegion.MapFileDescriptor(new GuestAddress(region.GuestAddress), region.Size, dup, region.MmapOffset);
            }
            catch (System.IO.IOException exception)
            {
                throw new VhostUserProtocolException($"{where}: mmap failed ({exception.Message})", exception);
            }

            return new VhostUserMemoryRegion(region.GuestAddress, region.Size, region.UserAddress, region.MmapOffset, mapping);
        }
        finally
        {
            fd.Dispose();
        }
    }
}
