using System;
using System.Linq;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Queues;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// Any split of the same bytes into buffers (empty ones included) reads back, and writes, as the
/// same bytes, whatever the sizes of the reads. Fixed seed: see <see cref="RingPropertyAttribute"/>.
/// </summary>
public sealed class ChainCursorProperties
{
    [RingProperty]
    public Property AnySplit_ReadsBackTheSameBytes(byte[] data, byte[] cuts, byte[] reads)
    {
        using var rig = new ChainRig();
        foreach (Range piece in Split(data.Length, cuts))
        {
            rig.Add(data.AsSpan(piece));
        }

        if (!rig.Gather())
        {
            return false.Label($"gather failed: {rig.Error}");
        }

        var reader = new ChainReader(rig.Readable);
        byte[] back = new byte[data.Length];
        int at = 0;
        int step = 0;
        while (reader.Remaining > 0)
        {
            int want = Math.Min(reads.Length == 0 ? 1 : 1 + (reads[step++ % reads.Length] % 20), data.Length - at);
            if (!reader.TryRead(back.AsSpan(at, want)))
            {
                return false.Label($"TryRead({want}) failed at {at}");
            }

            at += want;
        }

        return back.SequenceEqual(data).Label($"split {string.Join(",", cuts)}");
    }

    [RingProperty]
    public Property AnySplit_WritesTheSameBytes(byte[] data, byte[] cuts, byte[] writes)
    {
        using var rig = new ChainRig();
        rig.Add([0]);
        Range[] pieces = Split(data.Length, cuts);
        var addresses = pieces.Select(p => (Address: rig.AddWritable(p.End.Value - p.Start.Value), Range: p)).ToArray();
        if (!rig.Gather())
        {
            return false.Label($"gather failed: {rig.Error}");
        }

        var writer = new ChainWriter(rig.Writable);
        int at = 0;
        int step = 0;
        while (at < data.Length)
        {
            int cap = writes.Length == 0 ? 1 : 1 + (writes[step++ % writes.Length] % 20);
            at += writer.Write(data.AsSpan(at), cap);
        }

        byte[] back = addresses.SelectMany(a => rig.Guest(a.Address, a.Range.End.Value - a.Range.Start.Value).ToArray()).ToArray();
        return (back.SequenceEqual(data) && writer.Written == data.Length && writer.Remaining == 0).ToProperty();
    }

    /// <summary>Cuts [0, length) into at most 40 consecutive pieces, some of them empty.</summary>
    private static Range[] Split(int length, byte[] cuts)
    {
        int[] points = cuts.Take(39).Select(c => length == 0 ? 0 : c * length / 255).Append(0).Append(length).Order().ToArray();
        return points.Zip(points.Skip(1), (a, b) => a..b).ToArray();
    }
}
