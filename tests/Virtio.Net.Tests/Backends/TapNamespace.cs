using System;
using System.Diagnostics;
using System.IO;
using Virtio.Net.Backends;
using Xunit;

namespace Virtio.Net.Tests.Backends;

/// <summary>
/// A TAP interface of the test's own, moved into a network namespace made for it and addressed
/// <see cref="IcmpFrames.HostIp"/>/24 there, so the real kernel answers on the other side and no
/// frame leaves the machine. Disposing closes the tap and deletes the namespace.
/// </summary>
internal sealed class TapNamespace : IDisposable
{
    private TapNamespace(string ns, TapNetBackend tap)
    {
        Namespace = ns;
        Tap = tap;
    }

    /// <summary>The namespace's name.</summary>
    public string Namespace { get; }

    /// <summary>Our end of the interface, for the device.</summary>
    public TapNetBackend Tap { get; }

    /// <summary>
    /// Creates the namespace and the tap. With <paramref name="hostMac"/> the kernel's side gets that
    /// address, and with <paramref name="guestMac"/> a permanent neighbour entry for the guest's address,
    /// so the kernel answers without ARP.
    /// </summary>
    public static TapNamespace Create(byte[]? hostMac = null, byte[]? guestMac = null)
    {
        SkipUnlessUsable();
        string suffix = Random.Shared.Next(0x10000, 0xFFFFF).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        string ns = "vnt-" + suffix;
        string tapName = "vnt" + suffix;
        Ip($"netns add {ns}");
        TapNetBackend? tap = null;
        try
        {
            tap = TapNetBackend.Create(tapName);
            Assert.Equal(tapName, tap.InterfaceName);
            Ip($"link set {tapName} netns {ns}");
            if (hostMac is not null)
            {
                Ip($"-n {ns} link set {tapName} address {Mac(hostMac)}");
            }

            Ip($"-n {ns} addr add 10.99.0.1/24 dev {tapName}");
            Ip($"-n {ns} link set {tapName} up");
            if (guestMac is not null)
            {
                Ip($"-n {ns} neigh replace 10.99.0.2 lladdr {Mac(guestMac)} dev {tapName} nud permanent");
            }

            return new TapNamespace(ns, tap);
        }
        catch
        {
            tap?.Dispose();
            Ip($"netns del {ns}", check: false);
            throw;
        }
    }

    /// <summary>Runs <c>ip</c> with <paramref name="arguments"/> (bounded); fails the test on a non-zero exit when <paramref name="check"/>.</summary>
    public static void Ip(string arguments, bool check = true)
    {
        var start = new ProcessStartInfo("ip", arguments) { RedirectStandardError = true, RedirectStandardOutput = true };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("ip did not start.");
        string error = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(NetRig.Timeout), $"ip {arguments} did not finish.");
        if (check)
        {
            Assert.True(process.ExitCode == 0, $"ip {arguments} failed ({process.ExitCode}): {error}");
        }
    }

    public void Dispose()
    {
        Tap.Dispose();
        Ip($"netns del {Namespace}", check: false);
    }

    /// <summary>Skips the test, with the reason, where TAP interfaces and namespaces cannot be made.</summary>
    public static void SkipUnlessUsable()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "TAP interfaces need Linux.");
        Assert.SkipUnless(Environment.IsPrivilegedProcess, "Needs root (CAP_NET_ADMIN) to create a TAP interface and a network namespace.");
        Assert.SkipUnless(File.Exists("/dev/net/tun"), "/dev/net/tun is missing.");
        Assert.SkipUnless(FindOnPath("ip"), "The ip tool (iproute2) is not installed.");
    }

    private static bool FindOnPath(string tool)
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':'))
        {
            if (File.Exists(Path.Combine(directory, tool)))
            {
                return true;
            }
        }

        return false;
    }

    private static string Mac(byte[] mac) => Convert.ToHexString(mac).ToLowerInvariant() is var hex
        ? string.Join(':', hex[0..2], hex[2..4], hex[4..6], hex[6..8], hex[8..10], hex[10..12])
        : "";
}
