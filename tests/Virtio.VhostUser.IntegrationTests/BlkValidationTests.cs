using System;
using System.Linq;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// Linux's virtio_blk driver against a vhost-user-blk back end: fio crc32c verify over random 4 KiB
/// and 64 KiB writes (verify reads interleaved and at the end) at iodepth 1 and 32 with two jobs
/// on two queues, flush, discard (blkdiscard and fio trim) and write zeroes, in one boot
/// (guest test blk-check, short runs), and no error in the guest's dmesg.
/// </summary>
// One collection for every boot test: two QEMU guests at once on 2 cores make both slow and
// their time bounds flaky.
[Collection("linux-guest")]
public sealed class BlkValidationTests(ITestOutputHelper output)
{
    private static readonly string[] s_expected =
    {
        "verify-randwrite-4k-qd1-j2", "verify-randwrite-4k-qd32-j2",
        "verify-randwrite-64k-qd1-j2", "verify-randwrite-64k-qd32-j2",
        "flush-randwrite-4k-fsync1", "flush-requests",
        "discard-blkdiscard", "discard-fio-trim", "discard-requests",
        "write-zeroes",
    };

    [Theory]
    [InlineData(BlkBackendKind.Ours)]
    [InlineData(BlkBackendKind.QemuStorageDaemon)]
    public Task BlkCheck_TwoQueues_FioVerifyFlushDiscardWriteZeroesPassWithCleanDmesg(BlkBackendKind kind) =>
        RunBlkCheckAsync(kind, packed: false);

    /// <summary>
    /// The same jobs over packed virtqueues: our daemon offers VIRTIO_F_RING_PACKED (<c>--blk ...,packed</c>),
    /// QEMU's <c>packed=on</c> lets the guest take it, and the guest's feature bits show bit 34.
    /// </summary>
    [Fact]
    public Task BlkCheck_PackedRing_Bit34NegotiatedAndFioVerifyFlushDiscardWriteZeroesPass() =>
        RunBlkCheckAsync(BlkBackendKind.Ours, packed: true);

    private async Task RunBlkCheckAsync(BlkBackendKind kind, bool packed)
    {
        HostRequirements.RequireBlk(kind);

        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create(packed ? $"blk-check-{kind}-packed" : $"blk-check-{kind}");
        string image = TestWorkDir.CreateRawImage(work, 64);
        try
        {
            using var backend = packed
                ? await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct, blkKeys: ",packed")
                : await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct);
            output.WriteLine("back end: " + string.Join(' ', backend.Command));
            using var qemu = QemuGuest.Start(guest, work, "blk-check", "blk-check",
                new[] { "vt_size=8M", "vt_runtime=2", "vt_numjobs=2", "vt_bs=\"4k 64k\"", "vt_qd=\"1 32\"" },
                BlkDevice(backend.SocketPath, queues: 2, packed), TimeSpan.FromSeconds(240));
            GuestRun run = await qemu.WaitAsync(TimeSpan.FromSeconds(250), ct);
            output.WriteLine(run.Summary);

            Assert.True(run.Passed, $"guest did not pass:\n{run.Summary}\nback end:\n{string.Join('\n', backend.Log.TakeLast(30))}");
            foreach (string name in s_expected)
            {
                Assert.True(run.Results.TryGetValue(name, out var result), $"no result {name}:\n{run.Summary}");
                Assert.True(result["status"] == "pass", $"{name} is {result["status"]}:\n{run.Summary}");
            }

            string blk = run.Lines.Single(l => l.Contains("VTEST-BLK ", StringComparison.Ordinal));
            var fields = GuestRun.Fields(blk[blk.IndexOf("VTEST-BLK ", StringComparison.Ordinal)..]);
            Assert.Equal("2", fields["nr_hw_queues"]);
            Assert.NotEqual("0", fields["write_zeroes_max_bytes"]);
            // /sys/bus/virtio/devices/*/features: one character per bit, bit 0 first.
            string features = fields["virtio_features"];
            Assert.True(features.Length > 34, $"feature bits too short: {features}");
            Assert.Equal(packed ? '1' : '0', features[34]);
            Assert.Empty(run.DmesgErrors);
            Assert.False(backend.HasExited, "the back end exited during the run");
            if (kind == BlkBackendKind.Ours)
            {
                int? rc = await backend.StopAsync(ct);
                Assert.True(rc == 0, $"our daemon did not exit 0 on SIGTERM (exit {rc?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none, killed"}):\n{string.Join('\n', backend.Log.TakeLast(30))}");
            }
        }
        finally
        {
            TestWorkDir.DeleteQuietly(image);
        }
    }

    internal static string[] BlkDevice(string socket, int queues, bool packed = false) => new[]
    {
        "-chardev", $"socket,id=c0,path={socket}",
        "-device", $"vhost-user-blk,chardev=c0,num-queues={queues}" + (packed ? ",packed=on" : ""),
    };
}
