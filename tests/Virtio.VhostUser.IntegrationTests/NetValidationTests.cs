using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// Linux's virtio_net driver: the guest pings the tap's address and runs iperf3 TCP both ways
/// (2 s each) against an iperf3 server in a network namespace of the test, which holds the tap.
/// Against our daemon (vhost-user net on the tap), and against QEMU's own virtio-net on the same
/// kind of tap as the reference that proves the guest side and the namespace plumbing.
/// </summary>
// One collection for every boot test: two QEMU guests at once on 2 cores make both slow and
// their time bounds flaky.
[Collection("linux-guest")]
public sealed class NetValidationTests(ITestOutputHelper output)
{
    private const string Tap = "vtap0";
    private const string PeerAddress = "10.99.0.1/24";

    [Fact]
    public async Task OurDaemonOnTap_GuestPingsPeerAndRunsIperf3BothWays()
    {
        HostRequirements.RequireQemu();
        HostRequirements.RequireTun();
        HostRequirements.RequireOurDaemon();
        await RunAsync(ours: true);
    }

    [Fact]
    public async Task QemuTapReference_GuestPingsPeerAndRunsIperf3BothWays()
    {
        HostRequirements.RequireQemu();
        HostRequirements.RequireTun();
        await RunAsync(ours: false);
    }

    private async Task RunAsync(bool ours)
    {
        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create(ours ? "net-ours" : "net-qemu-tap");
        using var ns = NetNamespace.Create();
        using var iperf = ChildProcess.Start(new[] { "ip", "netns", "exec", ns.Name }.Concat(Iperf3(guest)).Concat(new[] { "-s" }).ToArray(),
            TimeSpan.FromMinutes(5), Path.Combine(work, "iperf3-server.log"));

        VhostUserBackend? backend = null;
        try
        {
            string[] netdev;
            IReadOnlyList<string>? prefix = null;
            if (ours)
            {
                backend = await VhostUserBackend.StartNetAsync(work, ns.Name, Tap, ct);
                output.WriteLine("back end: " + string.Join(' ', backend.Command));
                netdev = new[] { "-chardev", $"socket,id=c1,path={backend.SocketPath}", "-netdev", "vhost-user,id=n0,chardev=c1" };
            }
            else
            {
                netdev = new[] { "-netdev", $"tap,id=n0,ifname={Tap},script=no,downscript=no" };
                prefix = new[] { "ip", "netns", "exec", ns.Name };
            }

            using var qemu = QemuGuest.Start(guest, work, "net", "net",
                new[] { "vt_ip=10.99.0.2/24", "vt_peer=10.99.0.1", "vt_iperf_time=2" },
                netdev.Concat(new[] { "-device", "virtio-net-device,netdev=n0,mac=52:54:00:99:00:02" }),
                TimeSpan.FromSeconds(180), prefix: prefix);
            await ns.ConfigureWhenPresentAsync(Tap, PeerAddress, TimeSpan.FromSeconds(60), ct);
            GuestRun run = await qemu.WaitAsync(TimeSpan.FromSeconds(190), ct);
            output.WriteLine(run.Summary);

            string backendLog = backend is null ? "" : "\nback end:\n" + string.Join('\n', backend.Log.TakeLast(30));
            Assert.True(run.Passed, $"guest did not pass:\n{run.Summary}{backendLog}");
            foreach (string name in new[] { "net-ping", "net-iperf3-tcp-send", "net-iperf3-tcp-recv" })
            {
                Assert.True(run.Results.TryGetValue(name, out var result) && result["status"] == "pass", $"{name} did not pass:\n{run.Summary}{backendLog}");
            }

            Assert.Empty(run.DmesgErrors);
            if (backend is not null)
            {
                Assert.False(backend.HasExited, "the back end exited during the run" + backendLog);
                int? rc = await backend.StopAsync(ct);
                Assert.True(rc == 0, $"our daemon did not exit 0 on SIGTERM (exit {rc?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none, killed"}){backendLog}");
            }
        }
        finally
        {
            backend?.Dispose();
        }
    }

    /// <summary>The host's iperf3, else the guest build's staged one through the staged loader.</summary>
    private static string[] Iperf3(string guestDir)
    {
        if (HostRequirements.OnPath("iperf3"))
        {
            return new[] { "iperf3" };
        }

        string st = Path.Combine(guestDir, "stage");
        return new[]
        {
            Path.Combine(st, "lib64", "ld-linux-x86-64.so.2"), "--library-path",
            $"{st}/lib/x86_64-linux-gnu:{st}/usr/lib/x86_64-linux-gnu", Path.Combine(st, "usr", "bin", "iperf3"),
        };
    }
}
