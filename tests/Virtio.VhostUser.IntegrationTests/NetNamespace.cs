using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>A network namespace of the test's own (deleted on Dispose), so no packet of the net
/// tests leaves the machine.</summary>
internal sealed class NetNamespace : IDisposable
{
    private static int s_count;

    private NetNamespace(string name) => Name = name;

    public string Name { get; }

    public static NetNamespace Create()
    {
        var ns = new NetNamespace($"vtit-{Environment.ProcessId}-{Interlocked.Increment(ref s_count)}");
        Run("ip", "netns", "add", ns.Name);
        Run("ip", "-n", ns.Name, "link", "set", "lo", "up");
        return ns;
    }

    /// <summary>Waits for <paramref name="device"/> to appear in the namespace (whoever creates
    /// it), then gives it <paramref name="address"/> and brings it up.</summary>
    public async Task ConfigureWhenPresentAsync(string device, string address, TimeSpan limit, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + limit;
        while (Exec("ip", "-n", Name, "link", "show", device) != 0)
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"{device} did not appear in netns {Name} within {limit.TotalSeconds:F0} s");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        Run("ip", "-n", Name, "addr", "add", address, "dev", device);
        Run("ip", "-n", Name, "link", "set", device, "up");
    }

    public void Dispose() => Exec("ip", "netns", "del", Name);

    private static void Run(params string[] command)
    {
        int rc = Exec(command);
        Assert.True(rc == 0, $"{string.Join(' ', command)} exited {rc}");
    }

    private static int Exec(params string[] command)
    {
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardError = true, RedirectStandardOutput = true };
        for (int i = 1; i < command.Length; i++)
        {
            psi.ArgumentList.Add(command[i]);
        }

        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        if (!p.WaitForExit(30_000))
        {
            p.Kill();
            return -1;
        }

        return p.ExitCode;
    }
}
