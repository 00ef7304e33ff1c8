using System;
using System.Diagnostics;
using System.IO;
using System.Threading;

namespace Virtio.Bench.Net;

/// <summary>
/// A network namespace <c>net-compare</c> creates for itself (deleted on dispose): the tap of each boot
/// is made inside it, it holds the peer address and the iperf3 server, so no frame of the run leaves
/// the machine.
/// </summary>
internal sealed class NetNamespaceScope : IDisposable
{
    private static readonly TimeSpan s_ipLimit = TimeSpan.FromSeconds(30);

    private readonly string _workDirectory;

    private NetNamespaceScope(string name, string workDirectory)
    {
        Name = name;
        _workDirectory = workDirectory;
    }

    public string Name { get; }

    /// <summary>Creates the namespace with its loopback up.</summary>
    /// <exception cref="IOException">An ip command failed.</exception>
    public static NetNamespaceScope Create(string workDirectory)
    {
        var scope = new NetNamespaceScope($"vnet-compare-{Environment.ProcessId}", workDirectory);
        scope.Ip("netns", "add", scope.Name);
        try
        {
            scope.Ip("-n", scope.Name, "link", "set", "lo", "up");
        }
        catch
        {
            scope.Dispose();
            throw;
        }

        return scope;
    }

    /// <summary>The command prefix that runs a program inside the namespace (in place: same pid).</summary>
    public string[] Exec => ["ip", "netns", "exec", Name];

    /// <summary>Whether <paramref name="device"/> exists in the namespace.</summary>
    public bool Has(string device) => TryIp("-n", Name, "link", "show", device) == 0;

    /// <summary>
    /// Waits (bounded, polling every 50 ms) until <paramref name="device"/> appears in the namespace
    /// (the back end creates it), then gives it <paramref name="address"/> and brings it up.
    /// </summary>
    /// <exception cref="TimeoutException">It did not appear in time.</exception>
    public void ConfigureWhenPresent(string device, string address, TimeSpan limit, CancellationToken cancellationToken)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (!Has(device))
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"{device} did not appear in netns {Name} within {limit.TotalSeconds:F0} s");
            }

            cancellationToken.WaitHandle.WaitOne(50);
            cancellationToken.ThrowIfCancellationRequested();
        }

        Ip("-n", Name, "addr", "add", address, "dev", device);
        Ip("-n", Name, "link", "set", device, "up");
    }

    /// <summary>Waits (bounded) until <paramref name="device"/> is gone, so the next boot can create it.</summary>
    /// <exception cref="TimeoutException">It is still there.</exception>
    public void WaitGone(string device, TimeSpan limit)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (Has(device))
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"{device} is still in netns {Name} {limit.TotalSeconds:F0} s after its back end ended");
            }

            Thread.Sleep(50);
        }
    }

    public void Dispose() => TryIp("netns", "del", Name);

    private void Ip(params string[] arguments)
    {
        int rc = TryIp(arguments);
        if (rc != 0)
        {
            throw new IOException($"ip {string.Join(' ', arguments)} exited {rc} (log {Path.Combine(_workDirectory, "ip.log")})");
        }
    }

    private int TryIp(params string[] arguments)
    {
        var start = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new IOException("could not start ip");
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        if (!process.WaitForExit(s_ipLimit))
        {
            process.Kill();
            return -1;
        }

        File.AppendAllText(Path.Combine(_workDirectory, "ip.log"), $"# ip {string.Join(' ', arguments)} -> {process.ExitCode}\n{output}");
        return process.ExitCode;
    }
}
