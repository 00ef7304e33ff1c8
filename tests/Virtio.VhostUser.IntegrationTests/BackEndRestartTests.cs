using System;
using System.Linq;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The back end dies under a running guest and a new one takes its place on the same socket and
/// image: QEMU (<c>-chardev socket,...,reconnect=1</c>) reconnects and restores the rings, the
/// guest's eight O_DIRECT + fsync writers (up to eight requests in flight over two queues, which
/// the back end may complete out of order) carry on to the end without an I/O error, and a fresh
/// boot reads back every block they acknowledged. SIGTERM lets the back end drain its rings
/// first; after SIGKILL, requests in flight are lost unless they are resubmitted (QEMU restarts a
/// ring at its used index; VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD covers out-of-order completion).
/// </summary>
[Collection("linux-guest")]
public sealed class BackEndRestartTests(ITestOutputHelper output)
{
    private const int Writers = 8;
    private const int Blocks = 800;
    private const int AcksBeforeKill = 150;

    /// <param name="kind">Whose back end.</param>
    /// <param name="signal">How the first one stops.</param>
    /// <param name="packed">Packed virtqueues (our daemon's <c>packed</c> key, QEMU's <c>packed=on</c>): the
    /// restarted back end finds where the rings stand, and what to resubmit, in the packed in-flight region.</param>
    [Theory]
    [InlineData(BlkBackendKind.Ours, "TERM", false)]
    [InlineData(BlkBackendKind.Ours, "KILL", false)]
    [InlineData(BlkBackendKind.QemuStorageDaemon, "TERM", false)]
    [InlineData(BlkBackendKind.QemuStorageDaemon, "KILL", false)]
    [InlineData(BlkBackendKind.Ours, "TERM", true)]
    [InlineData(BlkBackendKind.Ours, "KILL", true)]
    public async Task BackEndRestarted_MidWrites_GuestFinishesAndEveryAcknowledgedBlockReadsBack(BlkBackendKind kind, string signal, bool packed)
    {
        HostRequirements.RequireBlk(kind);
        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create($"restart-{kind}-{signal}{(packed ? "-packed" : "")}");
        string keys = packed ? ",packed" : "";
        string image = TestWorkDir.CreateRawImage(work, 64);
        string nonce = Guid.NewGuid().ToString("N")[..12];
        VhostUserBackend? first = null;
        VhostUserBackend? second = null;
        try
        {
            first = await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct, "backend-1.log", blkKeys: keys);
            string socket = first.SocketPath;
            var acks = new AckTracker(Writers);
            Task<VhostUserBackend>? restart = null;
            void OnLine(string line)
            {
                if (acks.Add(line) == AcksBeforeKill)
                {
                    // On the console reader, at once: the writers are mid-dd. The new back end is
                    // started off this thread once the old one has exited (as a supervisor
                    // restarts a daemon), and at least a second later. Both back ends unlink
                    // their socket file on exit; qemu-storage-daemon does so whoever owns it by
                    // then, so starting the new one while the old one still drains under a slow
                    // machine would leave QEMU nothing to reconnect to.
                    first.Signal(signal);
                    restart = Task.Run(async () =>
                    {
                        var delay = Task.Delay(1000, ct);
                        await first.WaitForExitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
                        await delay.ConfigureAwait(false);
                        return await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct, "backend-2.log", blkKeys: keys).ConfigureAwait(false);
                    }, ct);
                }
            }

            GuestRun run;
            using (var writer = QemuGuest.Start(guest, work, "restart-write", "crash-write",
                new[] { $"vt_writers={Writers}", $"vt_blocks={Blocks}", $"vt_nonce={nonce}" },
                new[] { "-chardev", $"socket,id=c0,path={socket},reconnect=1", "-device", "vhost-user-blk,chardev=c0,num-queues=2" + (packed ? ",packed=on" : "") },
                TimeSpan.FromSeconds(150), OnLine))
            {
                run = await writer.WaitAsync(TimeSpan.FromSeconds(160), ct);
            }

            Assert.True(restart is not null, $"the guest ended before {AcksBeforeKill} acknowledged writes:\n{run.Summary}");
            second = await restart!;
            string logs = $"\nfirst back end:\n{string.Join('\n', first.Log.TakeLast(15))}\nsecond back end:\n{string.Join('\n', second.Log.TakeLast(15))}";
            output.WriteLine($"back end SIG{signal} after {AcksBeforeKill} acknowledged writes; {acks.Count} acknowledged in all, last per writer {acks.LastPerWriter}");
            output.WriteLine(run.Summary);
            Assert.True(run.Passed, $"the guest did not finish its writes across the back-end restart:\n{run.Summary}{logs}");
            Assert.Empty(run.DmesgErrors);
            Assert.Equal(Blocks, acks.Count);

            using var verifier = QemuGuest.Start(guest, work, "restart-verify", "crash-verify",
                new[] { $"vt_acked={acks.LastPerWriter}", $"vt_nonce={nonce}" },
                BlkValidationTests.BlkDevice(socket, queues: 2, packed), TimeSpan.FromSeconds(150));
            GuestRun check = await verifier.WaitAsync(TimeSpan.FromSeconds(160), ct);
            output.WriteLine(check.Summary);
            Assert.True(check.Passed, $"acknowledged blocks lost across the back-end restart:\n{check.Summary}{logs}");
        }
        finally
        {
            second?.Dispose();
            first?.Dispose();
            TestWorkDir.DeleteQuietly(image);
        }
    }
}
