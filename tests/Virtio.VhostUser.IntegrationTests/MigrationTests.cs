using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// Live migration of a guest with a vhost-user-blk disk to a second QEMU on this machine, each
/// QEMU with its own back end on the one shared image (<c>lock=off</c>, qemu-storage-daemon's
/// <c>locking=off</c>): the source runs the guest's fio crc32c verify runs one after another
/// (vtest=migrate-verify: per round a write run, then a read-back run verifying it ten times), the
/// destination waits with <c>-incoming</c>, and QMP <c>migrate</c> is sent while the second round's
/// read-back run is in the middle of its reads. The migration completes, the destination
/// resumes, the same run goes on there and every run verifies clean, and the guest finishes on the
/// destination's console. While the RAM is copied QEMU has the source's back end log its guest
/// memory writes (VHOST_F_LOG_ALL, VHOST_USER_PROTOCOL_F_LOG_SHMFD): a read whose data the back end
/// wrote into a page without marking it would reach the destination stale, and fio would see it.
/// </summary>
[Collection("linux-guest")]
public sealed class MigrationTests(ITestOutputHelper output)
{
    private const int Rounds = 2;
    private const int MigratedRound = 1;
    private static readonly TimeSpan QmpLimit = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(BlkBackendKind.Ours)]
    [InlineData(BlkBackendKind.QemuStorageDaemon)]
    public async Task LiveMigration_MidVerify_ToASecondBackEndOnTheSharedImage_CompletesAndEveryVerifyRunIsClean(BlkBackendKind kind)
    {
        HostRequirements.RequireBlk(kind);
        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create($"migrate-{kind}");
        string image = TestWorkDir.CreateRawImage(work, 64);
        string sourceQmp = Path.Combine(work, "source.qmp"), destinationQmp = Path.Combine(work, "destination.qmp");
        string migration = Path.Combine(work, "migration.sock");
        // Each round writes 16 MiB in 4 KiB blocks at depth 8 with verify reads interleaved, then
        // reads and verifies it 10 times over (some 10 s here under TCG): long enough to migrate
        // inside that second run (4 to 7 s, our back end's dirty logging the slower). There nearly
        // every page the disk writes is a read's buffer that only the device writes, so a write the
        // back end did not log reaches the destination stale and fails the verify.
        string[] knobs = { "vt_size=16M", $"vt_rounds={Rounds}", "vt_bs=4k", "vt_qd=8", "vt_backlog=64", "vt_reverify_loops=10" };
        string migratedRun = $"migrate-reverify-{MigratedRound}";
        var clock = Stopwatch.StartNew();
        try
        {
            using var backEndA = await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct, "backend-a.log", socketName: "a.sock", sharedImage: true);
            using var backEndB = await VhostUserBackend.StartBlkAsync(kind, work, image, queues: 2, ct, "backend-b.log", socketName: "b.sock", sharedImage: true);
            output.WriteLine("back end A: " + string.Join(' ', backEndA.Command));
            output.WriteLine("back end B: " + string.Join(' ', backEndB.Command));

            using var destination = QemuGuest.Start(guest, work, "destination", "migrate-verify", knobs,
                [.. BlkValidationTests.BlkDevice(backEndB.SocketPath, queues: 2), "-qmp", $"unix:{destinationQmp},server=on,wait=off", "-incoming", $"unix:{migration}"],
                TimeSpan.FromSeconds(150), bootLimit: Timeout.InfiniteTimeSpan);
            using QmpClient destinationControl = await QmpClient.ConnectAsync(destinationQmp, QmpLimit, ct);
            string waiting = (await destinationControl.ExecuteAsync("query-status", null, QmpLimit, ct)).GetProperty("status").GetString()!;
            Assert.Equal("inmigrate", waiting);

            var midRun = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnSourceLine(string line)
            {
                if (MigIo(line) is (MigratedRound, "reverify", int reads) && reads > 0)
                {
                    midRun.TrySetResult(reads);
                }
            }

            using var source = QemuGuest.Start(guest, work, "source", "migrate-verify", knobs,
                [.. BlkValidationTests.BlkDevice(backEndA.SocketPath, queues: 2), "-qmp", $"unix:{sourceQmp},server=on,wait=off"],
                TimeSpan.FromSeconds(150), OnSourceLine);
            Task first = await Task.WhenAny(midRun.Task, source.WaitAsync(TimeSpan.FromSeconds(120), ct));
            Assert.True(first == midRun.Task, $"the source never reached {migratedRun}'s reads:\n{source.Snapshot().Summary}");
            int readsAtMigrate = await midRun.Task;
            double bootedAt = clock.Elapsed.TotalSeconds;

            using QmpClient sourceControl = await QmpClient.ConnectAsync(sourceQmp, QmpLimit, ct);
            await sourceControl.ExecuteAsync("migrate-set-capabilities",
                new { capabilities = new[] { new { capability = "events", state = true } } }, QmpLimit, ct);
            // The default 128 MiB/s would make the copy of 512 MiB take longer than the run lasts.
            await sourceControl.ExecuteAsync("migrate-set-parameters", new Dictionary<string, object> { ["max-bandwidth"] = 8L << 30 }, QmpLimit, ct);
            await sourceControl.ExecuteAsync("migrate", new { uri = $"unix:{migration}" }, QmpLimit, ct);
            JsonElement ended = await sourceControl.WaitForEventAsync(e => QmpClient.IsEvent(e, "MIGRATION", "completed", "failed", "cancelled"), TimeSpan.FromSeconds(60), ct);
            JsonElement info = await sourceControl.ExecuteAsync("query-migrate", null, QmpLimit, ct);
            string sourceStatus = (await sourceControl.ExecuteAsync("query-status", null, QmpLimit, ct)).GetProperty("status").GetString()!;
            output.WriteLine($"migrate sent {bootedAt:F1} s in, at read {readsAtMigrate} of {migratedRun}: {ended}; query-migrate {info}");
            string backEnds = $"\nback end A:\n{string.Join('\n', backEndA.Log.TakeLast(20))}\nback end B:\n{string.Join('\n', backEndB.Log.TakeLast(20))}";
            Assert.True(info.GetProperty("status").GetString() == "completed", $"migration did not complete: {info}\nsource:\n{source.Snapshot().Summary}{backEnds}");
            Assert.Equal("postmigrate", sourceStatus);
            await destinationControl.WaitForEventAsync(e => QmpClient.IsEvent(e, "RESUME"), QmpLimit, ct);

            // The source is done: its console is whole once it has quit.
            await sourceControl.ExecuteAsync("quit", null, QmpLimit, ct);
            GuestRun before = await source.WaitAsync(TimeSpan.FromSeconds(30), ct);
            GuestRun after = await destination.WaitAsync(TimeSpan.FromSeconds(120), ct);
            output.WriteLine($"source:\n{before.Summary}\ndestination:\n{after.Summary}\nwhole row {clock.Elapsed.TotalSeconds:F1} s");

            // Migrated in the middle of the reverify run of round 1: the runs before it passed on the
            // source, it had read there and had not ended, and it read more on the destination
            // before it verified clean there.
            foreach (string run in new[] { "migrate-verify-0", "migrate-reverify-0", $"migrate-verify-{MigratedRound}" })
            {
                Assert.True(before.Results.TryGetValue(run, out var result) && result["status"] == "pass", $"{run} did not pass on the source:\n{before.Summary}");
            }

            Assert.False(before.Results.ContainsKey(migratedRun), $"{migratedRun} ended before the migration did: the row migrated between runs\n{before.Summary}");
            Assert.Null(before.DoneLine);
            int lastOnSource = Reads(before);
            int lastOnDestination = Reads(after);
            Assert.True(lastOnDestination > lastOnSource, $"{migratedRun} did not go on on the destination (last reads seen: source {lastOnSource}, destination {lastOnDestination}):\n{after.Summary}");
            Assert.DoesNotContain(after.Lines, line => line.Contains("VTEST-INIT", StringComparison.Ordinal));

            Assert.True(after.Passed, $"the guest did not pass on the destination:\n{after.Summary}{backEnds}");
            Assert.Contains($"passed={2 * Rounds} failed=0", after.DoneLine, StringComparison.Ordinal);
            Assert.True(after.Results.TryGetValue(migratedRun, out var migrated) && migrated["status"] == "pass" && migrated["err"] == "0",
                $"{migratedRun} on the destination:\n{after.Summary}");

            Assert.Empty(after.DmesgErrors);
            Assert.False(backEndA.HasExited || backEndB.HasExited, $"a back end exited during the migration{backEnds}");
            if (kind == BlkBackendKind.Ours)
            {
                foreach (VhostUserBackend backEnd in new[] { backEndA, backEndB })
                {
                    int? rc = await backEnd.StopAsync(ct);
                    Assert.True(rc == 0, $"{backEnd.SocketPath}: our daemon did not exit 0 on SIGTERM (exit {rc?.ToString(CultureInfo.InvariantCulture) ?? "none, killed"}){backEnds}");
                }
            }
        }
        finally
        {
            TestWorkDir.DeleteQuietly(image);
        }
    }

    /// <summary>The most reads the migrated run's VTEST-MIG-IO lines on <paramref name="console"/> report; -1 when none.</summary>
    private static int Reads(GuestRun console) =>
        console.Lines.Select(MigIo).Where(io => io is (MigratedRound, "reverify", _)).Select(io => io!.Value.Reads).DefaultIfEmpty(-1).Max();

    /// <summary>The round, phase and read count of a "VTEST-MIG-IO round=R phase=P writes=N reads=N ..." line.</summary>
    private static (int Round, string Phase, int Reads)? MigIo(string line)
    {
        int at = line.IndexOf("VTEST-MIG-IO ", StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var fields = GuestRun.Fields(line[at..]);
        return fields.TryGetValue("round", out string? round) && fields.TryGetValue("phase", out string? phase) && fields.TryGetValue("reads", out string? reads)
            && int.TryParse(round, NumberStyles.None, CultureInfo.InvariantCulture, out int r) && int.TryParse(reads, NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            ? (r, phase, n) : null;
    }
}
