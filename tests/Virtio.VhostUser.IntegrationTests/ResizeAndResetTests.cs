using System;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// Issue 18 against the stock Linux guest in QEMU 7.2: a disk resized under our daemon reaches the
/// guest (the capacity, CONFIG_CHANGE_MSG with REPLY_ACK, QEMU's GET_CONFIG, the driver's
/// config-change interrupt) and the guest does I/O past the old end; and a guest that reboots again
/// and again finds the device working after each reset, with the daemon's log showing what QEMU 7.2
/// sends on a virtio reset of vhost-user-blk (docs/vhost-user.md, "Reset and status").
/// </summary>
[Collection("linux-guest")]
public sealed class ResizeAndResetTests(ITestOutputHelper output)
{
    private const int Mebibyte = 1 << 20;

    /// <summary>
    /// The guest prints its size and waits; the image grows by truncate and SIGHUP (64 to 96 MiB),
    /// then by the control socket's <c>resize</c> (to 128 MiB); the guest sees each size in
    /// /sys/block/vda/size and writes and reads back 4 KiB past the old end each time.
    /// </summary>
    [Fact]
    public async Task Resize_SighupThenControlSocket_GuestSeesEachSizeAndDoesIoPastTheOldEnd()
    {
        HostRequirements.RequireBlk(BlkBackendKind.Ours);
        CancellationToken ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create("blk-resize");
        string image = TestWorkDir.CreateRawImage(work, 64);
        string control = Path.Combine(work, "control.sock");
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstResize = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            using var backend = await VhostUserBackend.StartBlkAsync(BlkBackendKind.Ours, work, image, queues: 1, ct, extraArgs: ["--control", control]);
            using var qemu = QemuGuest.Start(guest, work, "blk-resize", "resize", ["vt_resizes=2", "vt_resize_wait=30"],
                BlkValidationTests.BlkDevice(backend.SocketPath, queues: 1), TimeSpan.FromSeconds(85),
                onLine: line =>
                {
                    if (line.Contains("VTEST-RESIZE-READY", StringComparison.Ordinal))
                    {
                        ready.TrySetResult();
                    }
                    else if (line.Contains("VTEST-RESIZED n=1", StringComparison.Ordinal))
                    {
                        firstResize.TrySetResult();
                    }
                });

            await ready.Task.WaitAsync(TimeSpan.FromSeconds(70), ct);
            using (var file = new FileStream(image, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            {
                file.SetLength(96L * Mebibyte);
            }

            backend.Signal("HUP");
            await firstResize.Task.WaitAsync(TimeSpan.FromSeconds(30), ct);
            string reply = await CommandAsync(control, $"resize blk0 {128L * Mebibyte}", ct);
            output.WriteLine("control: " + reply);
            Assert.StartsWith("ok blk0 134217728 bytes", reply, StringComparison.Ordinal);

            GuestRun run = await qemu.WaitAsync(TimeSpan.FromSeconds(40), ct);
            output.WriteLine(run.Summary);
            Assert.True(run.Passed, $"guest did not pass:\n{run.Summary}\nback end:\n{string.Join('\n', backend.Log.TakeLast(30))}");
            Assert.Contains(run.Lines, l => l.Contains("VTEST-RESIZE-READY sectors=131072", StringComparison.Ordinal));
            Assert.Contains(run.Lines, l => l.Contains("VTEST-RESIZED n=1 sectors=196608", StringComparison.Ordinal));
            Assert.Contains(run.Lines, l => l.Contains("VTEST-RESIZED n=2 sectors=262144", StringComparison.Ordinal));
            Assert.Equal(2, backend.Log.Count(l => l.Contains("configuration change (CONFIG_CHANGE_MSG) sent", StringComparison.Ordinal)));
            Assert.DoesNotContain(backend.Log, l => l.Contains("acknowledged a configuration change with status", StringComparison.Ordinal));
            Assert.Empty(run.DmesgErrors);
        }
        finally
        {
            TestWorkDir.DeleteQuietly(image);
        }
    }

    /// <summary>
    /// The guest reboots three times (a counter in the disk's first sector), each boot writing and
    /// reading back a block through our device. QEMU 7.2 stops vhost-user-blk on each virtio reset
    /// with SET_STATUS 0 before SET_VRING_ENABLE 0 and GET_VRING_BASE (it never sends RESET_DEVICE
    /// for it, though negotiated); the daemon must see that sequence once per reboot and keep serving.
    /// </summary>
    [Fact]
    public async Task RebootLoop_ThreeReboots_DeviceWorksAfterEach_DaemonSawStatusZeroThenGetVringBase()
    {
        HostRequirements.RequireBlk(BlkBackendKind.Ours);
        CancellationToken ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create("blk-reboot");
        string image = TestWorkDir.CreateRawImage(work, 64);
        try
        {
            using var backend = await VhostUserBackend.StartBlkAsync(BlkBackendKind.Ours, work, image, queues: 1, ct, extraArgs: ["--verbose"]);
            using var qemu = QemuGuest.Start(guest, work, "blk-reboot", "reboot-loop", ["vt_reboots=3", "reboot=t"],
                BlkValidationTests.BlkDevice(backend.SocketPath, queues: 1), TimeSpan.FromSeconds(85), reboot: true);
            GuestRun run = await qemu.WaitAsync(TimeSpan.FromSeconds(90), ct);
            output.WriteLine(run.Summary);
            Assert.True(run.Passed, $"guest did not pass:\n{run.Summary}\nback end:\n{string.Join('\n', backend.Log.TakeLast(40))}");
            Assert.Equal("3", run.Results["reboot-loop"]["reboots"]);
            Assert.Equal(4, run.Lines.Count(l => l.Contains("VTEST-INIT ", StringComparison.Ordinal)));

            // What the daemon saw: one stop per reboot, each SET_STATUS 0 (the device stopped and
            // reset there) followed by GET_VRING_BASE for the ring, which got its position.
            string[] requests = backend.Log.Where(l => l.Contains("vhost-user: ", StringComparison.Ordinal)).ToArray();
            int[] stops = Enumerable.Range(0, requests.Length).Where(i => requests[i].Contains("device stopped and reset on SetStatus", StringComparison.Ordinal)).ToArray();
            int resets = requests.Count(l => l.Contains("vhost-user: ResetDevice ", StringComparison.Ordinal));
            output.WriteLine($"daemon: {stops.Length} stop(s) on SET_STATUS 0, {resets} RESET_DEVICE");
            Assert.True(stops.Length >= 3, $"expected a SET_STATUS 0 stop per reboot, saw {stops.Length}:\n{string.Join('\n', requests.TakeLast(60))}");
            foreach (int stop in stops)
            {
                Assert.Contains(requests.Skip(stop + 1).Take(4), l => l.Contains("vhost-user: GetVringBase ", StringComparison.Ordinal));
            }

            Assert.DoesNotContain(backend.Log, l => l.Contains("closing connection", StringComparison.Ordinal));
            Assert.Empty(run.DmesgErrors);
        }
        finally
        {
            TestWorkDir.DeleteQuietly(image);
        }
    }

    /// <summary>One line to the daemon's control socket, its reply line back.</summary>
    private static async Task<string> CommandAsync(string path, string line, CancellationToken ct)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
        await socket.SendAsync(Encoding.ASCII.GetBytes(line + "\n"), SocketFlags.None, ct);
        byte[] buffer = new byte[512];
        int filled = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(20));
        while (Array.IndexOf(buffer, (byte)'\n', 0, filled) < 0 && filled < buffer.Length)
        {
            int read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, timeout.Token);
            if (read == 0)
            {
                break;
            }

            filled += read;
        }

        return Encoding.ASCII.GetString(buffer, 0, filled).TrimEnd('\n');
    }
}
