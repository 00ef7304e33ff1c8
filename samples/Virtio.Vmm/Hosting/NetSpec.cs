using System;
using System.Net.NetworkInformation;

namespace Virtio.Vmm.Hosting;

/// <summary>One <c>--net tap=NAME[,mac=52:54:00:12:34:56][,netns=NS]</c>.</summary>
/// <param name="Tap">The tap interface to create or attach to.</param>
/// <param name="Mac">The guest's MAC address.</param>
/// <param name="Namespace">When set, the VMM creates this network namespace, moves the tap into it with the host address, and deletes it at exit.</param>
internal sealed record NetSpec(string Tap, PhysicalAddress Mac, string? Namespace)
{
    /// <summary>The MAC address the guest gets unless told otherwise (a locally administered one).</summary>
    public static readonly PhysicalAddress DefaultMac = new([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    /// <summary>Parses the option's value; returns null and a message when it is malformed.</summary>
    public static NetSpec? TryParse(string text, out string? error)
    {
        error = null;
        string? tap = null;
        string? ns = null;
        PhysicalAddress mac = DefaultMac;
        foreach (string part in text.Split(','))
        {
            if (part.StartsWith("tap=", StringComparison.Ordinal) && part.Length is > 4 and <= 4 + 15)
            {
                tap = part[4..];
            }
            else if (part.StartsWith("mac=", StringComparison.Ordinal) && PhysicalAddress.TryParse(part[4..], out PhysicalAddress? parsed)
                && parsed.GetAddressBytes().Length == 6)
            {
                mac = parsed;
            }
            else if (part.StartsWith("netns=", StringComparison.Ordinal) && part.Length > 6)
            {
                ns = part[6..];
            }
            else
            {
                error = $"--net '{text}': '{part}' is not tap=NAME (at most 15 characters), mac=xx:xx:xx:xx:xx:xx or netns=NAME";
                return null;
            }
        }

        if (tap is null)
        {
            error = $"--net '{text}': tap=NAME is required";
            return null;
        }

        return new NetSpec(tap, mac, ns);
    }
}
