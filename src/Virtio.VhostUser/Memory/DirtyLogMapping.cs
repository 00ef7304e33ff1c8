using System;
using System.Buffers.Binary;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// The dirty-page bitmap a front end shares with SET_LOG_BASE (vhost-user.rst, "Migration"): one bit
/// per 4 KiB page of guest-physical address, page <c>p</c> at bit <c>p % 8</c> of byte <c>p / 8</c>,
/// set with atomic OR (the front end reads and clears it concurrently). The mapping is the front end's
/// and hostile: its size and offset are checked against the fd, and a page past the bitmap's end is
/// skipped, counted and logged once, never written.
/// </summary>
/// <remarks>Marking runs on any thread that completes a request; <see cref="Dispose"/> only once no
/// thread can mark any more (see <see cref="DirtyLog"/>).</remarks>
internal sealed class DirtyLogMapping : IDisposable
{
    /// <summary>log2 of VHOST_LOG_PAGE (0x1000).</summary>
    public const int PageShift = 12;

    /// <summary>
    /// The largest bitmap accepted: 1 GiB of bits covers 32 TiB of guest-physical address, past any
    /// memory table this server maps (the bitmap also covers the holes below the highest address).
    /// </summary>
    public const ulong MaxSize = 1ul << 30;

    private readonly ILogger _logger;
    private readonly ulong _size;
    private readonly ulong _words;
    private nint _base;
    private long _skipped;
    private int _skipLogged;

    private DirtyLogMapping(nint mapping, ulong size, ILogger logger)
    {
        _base = mapping;
        _size = size;
        _words = size / sizeof(ulong);
        _logger = logger;
    }

    /// <summary>Bytes of the bitmap.</summary>
    public ulong Size => _size;

    /// <summary>Pages asked to be marked that lie past the bitmap's end (skipped). Any thread.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>
    /// SET_LOG_BASE: checks <paramref name="log"/> against <paramref name="fd"/> (a size from 1 byte to
    /// <see cref="MaxSize"/>, a page-aligned offset, both inside the file, the file sealed against
    /// shrinking unless <paramref name="allowUnsealed"/>) and maps it shared and writable. Takes
    /// ownership of <paramref name="fd"/> (closed once mapped). Throws <see cref="VhostUserProtocolException"/>
    /// with the reason, leaving nothing mapped.
    /// </summary>
    public static DirtyLogMapping Map(SafeFileHandle fd, LogDescription log, bool allowUnsealed, ILogger logger)
    {
        using (fd)
        {
            ulong size = log.MmapSize;
            ulong offset = log.MmapOffset;
            if (size == 0 || size > MaxSize)
            {
                throw new VhostUserProtocolException($"SET_LOG_BASE: log size {size} bytes, expected 1 to {MaxSize}");
            }

            if (offset % (ulong)Environment.SystemPageSize != 0 || offset > long.MaxValue - size)
            {
                throw new VhostUserProtocolException($"SET_LOG_BASE: log offset {offset} is not page-aligned or too large");
            }

            // Seals before the size, as for the memory regions: once the file cannot shrink, the size
            // read now is a floor for ever, and no mark can fault on a truncated page.
            if (!FileSeals.CannotShrink(fd, out int seals) && !allowUnsealed)
            {
                throw new VhostUserProtocolException($"SET_LOG_BASE: the fd is not sealed against shrinking ({FileSeals.Describe(seals)}); it could be truncated under the mapping");
            }

            long fileSize = FileStat.Size(fd);
            if (fileSize < 0 || (ulong)fileSize < offset + size)
            {
                throw new VhostUserProtocolException($"SET_LOG_BASE: the file is {fileSize} bytes, shorter than offset {offset} + size {size}");
            }

            nint mapping = InFlightRegion.MapShared(fd, offset, size);
            if (mapping == -1)
            {
                throw new VhostUserProtocolException($"SET_LOG_BASE: mmap of {size} bytes failed (errno {LibC.errno})");
            }

            return new DirtyLogMapping(mapping, size, logger);
        }
    }

    /// <summary>Marks every page [<paramref name="address"/>, <paramref name="address"/> + <paramref name="length"/>) touches. Any thread.</summary>
    public void Mark(ulong address, ulong length)
    {
        if (length == 0)
        {
            return;
        }

        // A range that wraps the address space ends at its top: no bitmap reaches there (skipped below).
        ulong last = address + (length - 1);
        if (last < address)
        {
            last = ulong.MaxValue;
        }

        MarkPages(address >> PageShift, last >> PageShift);
    }

    /// <summary>Marks pages <paramref name="first"/> to <paramref name="last"/> (inclusive); those past the bitmap are skipped. Any thread; allocates nothing.</summary>
    public unsafe void MarkPages(ulong first, ulong last)
    {
        ulong pages = _size * 8;
        if (last >= pages)
        {
            Skip(first << PageShift, last - Math.Max(first, pages) + 1);
            if (first >= pages)
            {
                return;
            }

            last = pages - 1;
        }

        nint mapping = _base;
        if (mapping == 0)
        {
            return; // disposed: cannot happen while the lifetime rule holds, and never a throw on an I/O thread
        }

        long marked = (long)(last - first + 1);
        ulong page = first;
        while (true)
        {
            ulong word = page >> 6;
            ulong lastInWord = Math.Min(last, (word << 6) | 63);
            int count = (int)(lastInWord - page) + 1;
            ulong mask = (count == 64 ? ulong.MaxValue : (1ul << count) - 1) << (int)(page & 63);
            if (word < _words)
            {
                // Byte b of the word holds pages 8b to 8b + 7 (bit order of vhost-user.rst), so on a
                // big-endian machine the mask is swapped into memory order.
                ulong memoryMask = BitConverter.IsLittleEndian ? mask : BinaryPrimitives.ReverseEndianness(mask);

                // SAFETY: word < _words = size / 8, so the 8 bytes at word * 8 lie inside the mapping
                // of size bytes, which stays mapped until Dispose (never while a thread marks); the
                // mapping is page-aligned, so the word is aligned for the atomic OR.
                ref ulong target = ref *((ulong*)mapping + word);
                if ((Volatile.Read(ref target) & memoryMask) != memoryMask)
                {
                    Interlocked.Or(ref target, memoryMask);
                }
            }
            else
            {
                MarkTailBytes(mapping, word, mask);
            }

            if (lastInWord == last)
            {
                break;
            }

            page = lastInWord + 1;
        }

        VhostUserMetrics.DirtyPagesMarked.Add(marked);
    }

    /// <summary>The bitmap's last bytes when its size is not a multiple of 8: byte by byte, each inside the size.</summary>
    private unsafe void MarkTailBytes(nint mapping, ulong word, ulong mask)
    {
        for (int b = 0; b < sizeof(ulong); b++)
        {
            byte bits = (byte)(mask >> (b * 8));
            ulong index = (word * sizeof(ulong)) + (ulong)b;
            if (bits == 0 || index >= _size)
            {
                continue;
            }

            // SAFETY: index < _size, inside the live mapping (see MarkPages).
            ref byte target = ref *((byte*)mapping + index);
            byte seen = Volatile.Read(ref target);
            while ((seen & bits) != bits)
            {
                byte before = Interlocked.CompareExchange(ref target, (byte)(seen | bits), seen);
                if (before == seen)
                {
                    break;
                }

                seen = before;
            }
        }
    }

    private void Skip(ulong address, ulong pages)
    {
        Interlocked.Add(ref _skipped, (long)Math.Min(pages, long.MaxValue));
        if (Interlocked.Exchange(ref _skipLogged, 1) == 0)
        {
            Log.DirtyLogBeyondEnd(_logger, address, _size);
        }
    }

    /// <summary>Unmaps the bitmap. Only once no thread can mark it (the caller's rule).</summary>
    public unsafe void Dispose()
    {
        nint mapping = Interlocked.Exchange(ref _base, 0);
        if (mapping != 0)
        {
            // SAFETY: unmaps exactly the mapping made in Map, once (the exchange above).
            _ = LibC.munmap((void*)mapping, (size_t)_size);
        }
    }
}
