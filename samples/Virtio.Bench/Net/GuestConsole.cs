using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;

namespace Virtio.Bench.Net;

/// <summary>
/// The guest console of one boot as it arrives: keeps the <c>VTEST-</c> lines of guest-init.sh and
/// takes each process's CPU time when the pings are done (the net-ping result) and when both iperf3
/// runs are (the net-iperf3-tcp-recv result), so the CPU figures cover exactly the two iperf3 runs.
/// </summary>
/// <remarks><see cref="OnLine"/> runs on the thread reading QEMU's output; the rest after QEMU exited.</remarks>
internal sealed class GuestConsole
{
    private readonly List<string> _lines = [];
    private readonly Dictionary<string, Dictionary<string, string>> _results = new(StringComparer.Ordinal);
    private int _qemuPid;
    private int _backEndPid;
    private double _qemuStart = double.NaN;
    private double _qemuEnd = double.NaN;
    private double _backEndStart = double.NaN;
    private double _backEndEnd = double.NaN;

    /// <summary>QEMU's pid, set right after it started.</summary>
    public int QemuPid
    {
        set => Volatile.Write(ref _qemuPid, value);
    }

    /// <summary>Our daemon's pid (0 for QEMU's tap).</summary>
    public int BackEndPid
    {
        set => Volatile.Write(ref _backEndPid, value);
    }

    /// <summary>QEMU's CPU seconds between the two marks; NaN if a mark never came.</summary>
    public double QemuCpuSeconds => _qemuEnd - _qemuStart;

    /// <summary>Our daemon's CPU seconds between the two marks; NaN for QEMU's tap.</summary>
    public double BackEndCpuSeconds => _backEndEnd - _backEndStart;

    /// <summary>Whether the guest printed <c>VTEST-DONE status=pass</c>.</summary>
    public bool Passed { get; private set; }

    /// <summary>The VTEST lines, for error messages.</summary>
    public string Summary
    {
        get
        {
            lock (_lines)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    /// <summary>The key=value fields of the VTEST-RESULT line of <paramref name="name"/>, if it came.</summary>
    public bool TryGetResult(string name, out Dictionary<string, string> fields)
    {
        lock (_lines)
        {
            return _results.TryGetValue(name, out fields!);
        }
    }

    public void OnLine(string line)
    {
        int at = line.IndexOf("VTEST-", StringComparison.Ordinal);
        if (at < 0)
        {
            return;
        }

        string text = line[at..].TrimEnd('\r');
        lock (_lines)
        {
            _lines.Add(text);
        }

        if (text.StartsWith("VTEST-DONE ", StringComparison.Ordinal))
        {
            Passed = text.Contains("status=pass", StringComparison.Ordinal);
            return;
        }

        if (!text.StartsWith("VTEST-RESULT ", StringComparison.Ordinal))
        {
            return;
        }

        Dictionary<string, string> fields = Fields(text["VTEST-RESULT ".Length..]);
        if (!fields.TryGetValue("name", out string? name))
        {
            return;
        }

        if (name == "net-ping")
        {
            _qemuStart = ProcessCpu.Seconds(Volatile.Read(ref _qemuPid));
            _backEndStart = ProcessCpu.Seconds(Volatile.Read(ref _backEndPid));
        }
        else if (name == "net-iperf3-tcp-recv")
        {
            _qemuEnd = ProcessCpu.Seconds(Volatile.Read(ref _qemuPid));
            _backEndEnd = ProcessCpu.Seconds(Volatile.Read(ref _backEndPid));
        }

        lock (_lines)
        {
            _results[name] = fields;
        }
    }

    /// <summary>An iperf3 rate field (<c>1.64_Gbits/sec</c>) in Gbit/s; NaN if unreadable.</summary>
    public static double ParseGbps(string rate)
    {
        int separator = rate.IndexOf('_', StringComparison.Ordinal);
        if (separator < 0 || !double.TryParse(rate[..separator], NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
        {
            return double.NaN;
        }

        return rate[(separator + 1)..] switch
        {
            "Gbits/sec" => value,
            "Mbits/sec" => value / 1e3,
            "Kbits/sec" => value / 1e6,
            "bits/sec" => value / 1e9,
            _ => double.NaN,
        };
    }

    private static Dictionary<string, string> Fields(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string part in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                fields[part[..eq]] = part[(eq + 1)..];
            }
        }

        return fields;
    }
}
