using System;
using System.Runtime.InteropServices;

namespace Virtio.Bench.Soak;

/// <summary>
/// The soak's record of blk writes: each write carries a generation stamp (a global counter), and
/// per block the ledger keeps the newest acknowledged generation and the newest posted one. A block
/// has at most one request in flight (<see cref="TryReserve"/>), so a read must show a generation
/// in [acknowledged, posted]: one above the acknowledged is a write whose completion was lost with
/// an abrupt disconnect (it may or may not have landed), one below is a lost acknowledged write.
/// One thread.
/// </summary>
internal sealed class BlkLedger
{
    private readonly ulong[] _acked;
    private readonly ulong[] _posted;
    private readonly bool[] _busy;
    private ulong _generation;

    public BlkLedger(long blocks)
    {
        Blocks = blocks;
        _acked = new ulong[blocks];
        _posted = new ulong[blocks];
        _busy = new bool[blocks];
    }

    public long Blocks { get; }

    /// <summary>Blocks with at least one acknowledged write.</summary>
    public long AckedBlocks
    {
        get
        {
            long n = 0;
            foreach (ulong generation in _acked)
            {
                n += generation != 0 ? 1 : 0;
            }

            return n;
        }
    }

    public bool IsAcked(long block) => _acked[block] != 0;

    /// <summary>Marks <paramref name="block"/> as having a request in flight; false when it already has one.</summary>
    public bool TryReserve(long block)
    {
        if (_busy[block])
        {
            return false;
        }

        _busy[block] = true;
        return true;
    }

    /// <summary>A write of <paramref name="block"/> is about to be posted: its new generation.</summary>
    public ulong PostWrite(long block)
    {
        ulong generation = ++_generation;
        _posted[block] = generation;
        return generation;
    }

    /// <summary>The write of <paramref name="generation"/> completed with status OK.</summary>
    public void Acknowledge(long block, ulong generation)
    {
        _acked[block] = Math.Max(_acked[block], generation);
    }

    /// <summary>The block's request finished (acknowledged or not).</summary>
    public void Release(long block) => _busy[block] = false;

    /// <summary>Checks a read of <paramref name="block"/> against the ledger.</summary>
    public ReadVerdict Check(ReadOnlySpan<byte> data, long block)
    {
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        if (words.IndexOfAnyExcept(0ul) < 0)
        {
            return _acked[block] == 0 ? ReadVerdict.Ok : ReadVerdict.Lost;
        }

        ulong generation = words[1];
        if (words[0] != (ulong)block || generation == 0 || generation > _posted[block] || !IsIntact(words, block, generation))
        {
            return ReadVerdict.Corrupt;
        }

        return generation < _acked[block] ? ReadVerdict.Lost : ReadVerdict.Ok;
    }

    /// <summary>Fills a write buffer: the block number, the generation, then words derived from both.</summary>
    public static void Fill(Span<byte> data, long block, ulong generation)
    {
        Span<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        words[0] = (ulong)block;
        words[1] = generation;
        ulong seed = Seed(block, generation);
        for (int i = 2; i < words.Length; i++)
        {
            words[i] = seed + (ulong)i;
        }
    }

    private static bool IsIntact(ReadOnlySpan<ulong> words, long block, ulong generation)
    {
        ulong seed = Seed(block, generation);
        for (int i = 2; i < words.Length; i++)
        {
            if (words[i] != seed + (ulong)i)
            {
                return false;
            }
        }

        return true;
    }

    private static ulong Seed(long block, ulong generation) => (((ulong)block * 0x9E3779B97F4A7C15ul) ^ (generation * 0xC2B2AE3D27D4EB4Ful)) | 1;
}
