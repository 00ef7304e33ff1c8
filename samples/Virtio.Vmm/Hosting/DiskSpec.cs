using System;
using System.Globalization;

namespace Virtio.Vmm.Hosting;

/// <summary>One <c>--disk path[,readonly][,queues=N][,serial=ID]</c>.</summary>
/// <param name="Path">The backing file.</param>
/// <param name="ReadOnly">Offer VIRTIO_BLK_F_RO and open the file read-only.</param>
/// <param name="Queues">The number of request queues.</param>
/// <param name="Serial">The serial number (GET_ID), at most 20 bytes.</param>
internal sealed record DiskSpec(string Path, bool ReadOnly, int Queues, string Serial)
{
    /// <summary>Parses the option's value; returns null and a message when it is malformed.</summary>
    public static DiskSpec? TryParse(string text, out string? error)
    {
        string[] parts = text.Split(',');
        error = null;
        if (parts[0].Length == 0)
        {
            error = $"--disk '{text}': the path is empty";
            return null;
        }

        bool readOnly = false;
        int queues = 1;
        string serial = string.Empty;
        foreach (string part in parts.AsSpan(1))
        {
            if (part == "readonly")
            {
                readOnly = true;
            }
            else if (part.StartsWith("queues=", StringComparison.Ordinal)
                && int.TryParse(part.AsSpan(7), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 16)
            {
                queues = n;
            }
            else if (part.StartsWith("serial=", StringComparison.Ordinal) && part.Length - 7 <= 20)
            {
                serial = part[7..];
            }
            else
            {
                error = $"--disk '{text}': '{part}' is not readonly, queues=1..16 or serial=ID (at most 20 characters)";
                return null;
            }
        }

        return new DiskSpec(parts[0], readOnly, queues, serial);
    }
}
