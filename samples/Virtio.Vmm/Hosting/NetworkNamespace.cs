using System;
using System.Diagnostics;
using System.Globalization;

namespace Virtio.Vmm.Hosting;

/// <summary>
/// A network namespace the VMM makes for a tap (ip netns add), with the tap moved into it, given the
/// host address and brought up; deleted on Dispose. Traffic from the guest goes no further than it.
/// </summary>
internal sealed class NetworkNamespace : IDisposable
{
    /// <summary>The host side's address in the namespace.</summary>
    public const string HostAddress = "10.0.2.1";

    /// <summary>The guest's address.</summary>
    public const string GuestAddress = "10.0.2.15";

    private bool _deleted;

    private NetworkNamespace(string name) => Name = name;

    /// <summary>The namespace's name.</summary>
    public string Name { get; }

    /// <summary>Creates <paramref name="name"/> and moves <paramref name="tap"/> (already created) into it with 10.0.2.1/24.</summary>
    /// <exception cref="InvalidOperationException">An ip command failed; the message holds its error output.</exception>
    public static NetworkNamespace Create(string name, string tap)
    {
        Ip($"netns add {name}");
        var ns = new NetworkNamespace(name);
        try
        {
            Ip($"link set {tap} netns {name}");
            Ip($"-n {name} addr add {HostAddress}/24 dev {tap}");
            Ip($"-n {name} link set {tap} up");
            Ip($"-n {name} link set lo up");
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    }

    /// <summary>Whether this process can make taps and namespaces: root, /dev/net/tun and the ip tool.</summary>
    public static string? WhyUnavailable()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            return "not running as root";
        }

        if (!System.IO.File.Exists("/dev/net/tun"))
        {
            return "/dev/net/tun is missing";
        }

        try
        {
            Ip("-V");
        }
        catch (InvalidOperationException)
        {
            return "the ip tool (iproute2) is missing";
        }

        return null;
    }

    /// <summary>Deletes the namespace (and with it the tap, if the tap's fd is closed).</summary>
    public void Dispose()
    {
        if (_deleted)
        {
            return;
        }

        _deleted = true;
        try
        {
            Ip($"netns del {Name}");
        }
        catch (InvalidOperationException)
        {
            // Already gone; nothing to clean.
        }
    }

    private static void Ip(string arguments)
    {
        var start = new ProcessStartInfo("ip", arguments) { RedirectStandardError = true, RedirectStandardOutput = true };
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException("ip did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run ip: {e.Message}", e);
        }

        using (process)
        {
            string error = process.StandardError.ReadToEnd();
            process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(10_000) || process.ExitCode != 0)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"ip {arguments} failed: {error.Trim()}"));
            }
        }
    }
}
