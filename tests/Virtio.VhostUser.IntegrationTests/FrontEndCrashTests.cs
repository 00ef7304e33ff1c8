using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The front end dies mid-run: four guest writers write numbered 4 KiB blocks with O_DIRECT and
/// fsync, each printing VTEST-ACK after its write returned; QEMU gets kill -9 while they run.
/// A fresh QEMU then connects to the same, still running back end and the guest checks that
/// every acknowledged block reads back.
/// </summary>
// One collection for every boot test: two QEMU guests at once on 2 cores make both slow and
// their time bounds flaky.
[Collection("linux-guest")]
public sealed class FrontEndCrashTests(ITestOutputHelper output)
{
    private const int Writers = 4;
    private const int AcksBeforeKill = 200;

    /// <param name="kind">Whose back end.</param>
    /// <param name="packed">Packed virtqueues (our daemon's <c>packed</c> key, QEMU's <c>packed=on</c>), for both front ends.</param>
    [Theory]
    [InlineData(BlkBackendKind.Ours, false)]
    [InlineData(BlkBackendKind.QemuStorageDaemon, false)]
    [InlineData(BlkBackendKind.Ours, true)]
    public async Task FrontEndKilled_MidWrites_FreshFrontEndReadsEveryAcknowledgedBlock(BlkBackendKind kind, bool packed)
    {
        HostRequirements.RequireBlk(kind);

        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create(packed ? $"crash-{kind}-packed" : $"crash-{kind}");
        string image = TestWorkDir.CreateRawImage(work, 64);
        string nonce = Guid.NewGuid().ToString("N")[..12];
        try
        {
            using var backend = await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct, blkKeys: packed ? ",packed" : "");
            output.WriteLine("back end: " + string.Join(' ', backend.Command));

            var acks = new AckTracker(Writers);
            int killed = 0;
            QemuGuest? victim = null;
            void OnLine(string line)
            {
                // kill -9 right here, on the console reader, while the writers are running.
                if (acks.Add(line) >= AcksBeforeKill && Volatile.Read(ref victim) is { } v && Interlocked.Exchange(ref killed, 1) == 0)
                {
                    v.KillFrontEnd();
                }
            }

            GuestRun first;
            using (var writer = QemuGuest.Start(guest, work, "crash-write", "crash-write",
                new[] { $"vt_writers={Writers}", "vt_blocks=8192", $"vt_nonce={nonce}" },
                BlkValidationTests.BlkDevice(backend.SocketPath, queues: 2, packed), TimeSpan.FromSeconds(180), OnLine))
            {
                Volatile.Write(ref victim, writer);
                first = await writer.WaitAsync(TimeSpan.FromSeconds(180), ct);
                Assert.True(Volatile.Read(ref killed) == 1, $"the writer guest ended before {AcksBeforeKill} acknowledged writes:\n{first.Summary}");
            }

            string ackList = acks.LastPerWriter;
            int ackCount = acks.Count;

            output.WriteLine($"front end killed (exit {first.ExitCode}) after {ackCount} acknowledged writes, last per writer {ackList}");
            Assert.NotEqual(0, first.ExitCode);
            Assert.DoesNotContain(first.Lines, l => l.Contains("VTEST-CRASH-ERR", StringComparison.Ordinal));
            Assert.False(backend.HasExited, $"the back end exited when the front end died:\n{string.Join('\n', backend.Log.TakeLast(30))}");

            using var verifier = QemuGuest.Start(guest, work, "crash-verify", "crash-verify",
                new[] { $"vt_acked={ackList}", $"vt_nonce={nonce}" },
                BlkValidationTests.BlkDevice(backend.SocketPath, queues: 2, packed), TimeSpan.FromSeconds(180));
            GuestRun second = await verifier.WaitAsync(TimeSpan.FromSeconds(190), ct);
            output.WriteLine(second.Summary);
            Assert.True(second.Passed, $"the fresh front end did not verify the acknowledged blocks:\n{second.Summary}\nback end:\n{string.Join('\n', backend.Log.TakeLast(30))}");
            var result = second.Results["crash-verify"];
            Assert.Equal(ackCount.ToString(System.Globalization.CultureInfo.InvariantCulture), result["checked"]);
            Assert.Empty(second.DmesgErrors);
        }
        finally
        {
            TestWorkDir.DeleteQuietly(image);
        }
    }
}
