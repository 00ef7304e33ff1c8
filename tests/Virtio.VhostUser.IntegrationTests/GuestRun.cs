using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>The guest's console of one boot, parsed (the VTEST-* lines of guest-init.sh).</summary>
internal sealed partial class GuestRun
{
    public GuestRun(IReadOnlyList<string> lines, int? exitCode, string logPath)
    {
        Lines = lines;
        ExitCode = exitCode;
        LogPath = logPath;
        foreach (string line in lines)
        {
            int at = line.IndexOf("VTEST-RESULT ", StringComparison.Ordinal);
            if (at >= 0)
            {
                var fields = Fields(line[(at + "VTEST-RESULT ".Length)..]);
                if (fields.TryGetValue("name", out string? name))
                {
                    Results[name] = fields;
                }
            }
        }
    }

    public IReadOnlyList<string> Lines { get; }

    public int? ExitCode { get; }

    public string LogPath { get; }

    /// <summary>name -> key=value fields of each VTEST-RESULT line.</summary>
    public Dictionary<string, Dictionary<string, string>> Results { get; } = new();

    public string? DoneLine => Lines.LastOrDefault(l => l.Contains("VTEST-DONE ", StringComparison.Ordinal));

    public bool Passed => DoneLine?.Contains("status=pass", StringComparison.Ordinal) == true;

    /// <summary>dmesg lines the guest flagged (BUG/WARNING/Oops...) and virtio/blk lines that
    /// read as errors.</summary>
    public IReadOnlyList<string> DmesgErrors => Lines
        .Where(l => l.Contains("VTEST-DMESG-ERR ", StringComparison.Ordinal)
            || (l.Contains("VTEST-DMESG ", StringComparison.Ordinal) && DmesgError().IsMatch(l)))
        .ToList();

    /// <summary>The VTEST lines, for assertion messages.</summary>
    public string Summary => string.Join('\n', Lines.Where(l => l.Contains("VTEST-", StringComparison.Ordinal)
        && !l.Contains("VTEST-ACK ", StringComparison.Ordinal)).TakeLast(60)) + $"\n(console log {LogPath}, exit {ExitCode})";

    public static Dictionary<string, string> Fields(string text)
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

    [GeneratedRegex(@"error|fail|timeout|timed out|reset|I/O|blk_update_request|broken|invalid", RegexOptions.IgnoreCase)]
    private static partial Regex DmesgError();
}
