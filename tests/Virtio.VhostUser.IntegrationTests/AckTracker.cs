using System;
using System.Globalization;
using System.Linq;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The guest's <c>VTEST-ACK w=W seq=N</c> lines (crash-write): writer W's blocks are W, W+n,
/// W+2n, ... written in order, so the last acknowledged seq of each writer stands for all of its
/// acknowledged blocks. Thread-safe (fed from the console reader).
/// </summary>
internal sealed class AckTracker
{
    private readonly int[] _last;
    private int _lines;

    public AckTracker(int writers)
    {
        _last = new int[writers];
        Array.Fill(_last, -1);
    }

    /// <summary>Acknowledged blocks, from the last seq of each writer.</summary>
    public int Count
    {
        get
        {
            lock (_last)
            {
                return _last.Sum(a => a < 0 ? 0 : (a / _last.Length) + 1);
            }
        }
    }

    /// <summary>"a0,a1,..." for the guest's vt_acked (-1: nothing acknowledged).</summary>
    public string LastPerWriter
    {
        get
        {
            lock (_last)
            {
                return string.Join(',', _last);
            }
        }
    }

    /// <summary>Takes one console line; returns the number of ACK lines so far (0 if the line is
    /// not one). Four writers share the console: a line mangled by an interleaving is skipped
    /// (the writer's next acknowledgement covers it).</summary>
    public int Add(string line)
    {
        int at = line.IndexOf("VTEST-ACK ", StringComparison.Ordinal);
        if (at < 0)
        {
            return 0;
        }

        var f = GuestRun.Fields(line[at..]);
        if (!f.TryGetValue("w", out string? ws) || !f.TryGetValue("seq", out string? seqs)
            || !int.TryParse(ws, NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            || !int.TryParse(seqs, NumberStyles.None, CultureInfo.InvariantCulture, out int seq)
            || w >= _last.Length || seq % _last.Length != w)
        {
            return 0;
        }

        lock (_last)
        {
            _last[w] = Math.Max(_last[w], seq);
            return ++_lines;
        }
    }
}
