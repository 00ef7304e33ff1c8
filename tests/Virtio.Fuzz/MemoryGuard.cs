using System;
using System.Collections.Generic;
using Virtio.Core.Memory;

namespace Virtio.Fuzz;

/// <summary>
/// Catches writes where the device has no business writing: takes a copy of every region of a guest
/// memory, is told which ranges the device may write (the chains' writable buffers, the used rings),
/// and then checks that every other byte is as it was.
/// </summary>
/// <remarks>
/// Reads outside guest memory cannot happen through <see cref="GuestMemory"/> (every lookup is
/// bounds-checked); the targets check that each buffer the library hands out lies where its
/// descriptor says. This guard covers the other half: no write outside the buffers the guest gave.
/// </remarks>
internal sealed class MemoryGuard
{
    private readonly GuestMemory _memory;
    private readonly byte[][] _copies;
    private readonly List<(ulong Start, ulong End)> _writable = new(64);

    public MemoryGuard(GuestMemory memory)
    {
        _memory = memory;
        _copies = new byte[memory.Regions.Count][];
        for (int i = 0; i < _copies.Length; i++)
        {
            _copies[i] = new byte[memory.Regions[i].Size];
        }
    }

    /// <summary>Copies every region and forgets the writable ranges: call after the guest's set-up.</summary>
    public void Snapshot()
    {
        _writable.Clear();
        for (int i = 0; i < _copies.Length; i++)
        {
            Region(i).CopyTo(_copies[i]);
        }
    }

    /// <summary>Allows the device to write [<paramref name="address"/>, +<paramref name="length"/>).</summary>
    public void AllowWrite(ulong address, ulong length)
    {
        if (length != 0)
        {
            _writable.Add((address, address + length < address ? ulong.MaxValue : address + length));
        }
    }

    /// <summary>Fails when a byte outside the allowed ranges differs from the snapshot.</summary>
    /// <param name="what">Who wrote, for the report.</param>
    public void Verify(string what)
    {
        _writable.Sort(static (a, b) => a.Start.CompareTo(b.Start));
        for (int i = 0; i < _copies.Length; i++)
        {
            GuestMemoryRegion region = _memory.Regions[i];
            ulong regionStart = region.Start.Value, regionEnd = regionStart + region.Size;
            Span<byte> now = Region(i);
            ReadOnlySpan<byte> before = _copies[i];
            ulong cursor = regionStart;
            foreach ((ulong start, ulong end) in _writable)
            {
                if (end <= cursor || start >= regionEnd)
                {
                    continue;
                }

                if (start > cursor)
                {
                    Compare(now, before, cursor - regionStart, start - cursor, what);
                }

                cursor = Math.Max(cursor, Math.Min(end, regionEnd));
            }

            if (cursor < regionEnd)
            {
                Compare(now, before, cursor - regionStart, regionEnd - cursor, what);
            }
        }
    }

    private static void Compare(ReadOnlySpan<byte> now, ReadOnlySpan<byte> before, ulong offset, ulong length, string what)
    {
        ReadOnlySpan<byte> a = now.Slice((int)offset, (int)length), b = before.Slice((int)offset, (int)length);
        if (!a.SequenceEqual(b))
        {
            int at = 0;
            while (a[at] == b[at])
            {
                at++;
            }

            Invariant.Fail($"{what} wrote guest memory outside every writable buffer and used ring: region offset 0x{offset + (ulong)at:x}, 0x{b[at]:x2} -> 0x{a[at]:x2}");
        }
    }

    private Span<byte> Region(int index)
    {
        GuestMemoryRegion region = _memory.Regions[index];
        if (!_memory.TryGetSpan(region.Start, (int)region.Size, out Span<byte> span))
        {
            Invariant.Fail($"region at {region.Start} is not guest memory");
        }

        return span;
    }
}
