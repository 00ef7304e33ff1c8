using System;
using System.Globalization;

namespace Virtio.VhostUserDaemon;

/// <summary>The value of --blk: <c>FILE[,readonly][,queues=N]</c>.</summary>
internal sealed record BlkSpec(string Path, bool ReadOnly, int Queues)
{
    public const int DefaultQueues = 4;

    public static bool TryParse(string text, out BlkSpec? spec, out string? error)
    {
        spec = null;
        string[] parts = text.Split(',');
        if (parts[0].Length == 0)
        {
            error = "--blk needs a file name first";
            return false;
        }

        bool readOnly = false;
        int queues = DefaultQueues;
        for (int i = 1; i < parts.Length; i++)
        {
            string part = parts[i];
            if (part == "readonly")
            {
                readOnly = true;
            }
            else if (part.StartsWith("queues=", StringComparison.Ordinal)
                && int.TryParse(part.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 64)
            {
                queues = n;
            }
            else
            {
                error = $"--blk: unknown option '{part}' (expected readonly or queues=1..64)";
                return false;
            }
        }

        spec = new BlkSpec(parts[0], readOnly, queues);
        error = null;
        return true;
    }
}
