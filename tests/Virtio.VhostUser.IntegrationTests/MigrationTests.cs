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
/// (vtest=migrate-verify), the destination waits with <c>-incoming</c>, and QMP <c>migrate</c> is sent
/// while a verify run is in the middle of its writes. The migration completes, the destination
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
        // Each run writes the whole 64 MiB disk in 4 KiB blocks at depth 8 (12 to 15 s here under
        // TCG) with verify reads interleaved, then reads it all back: long enough to migrate inside
        // one (4 to 7 s, our back end's dirty logging the slower; 48 MiB runs left 2 s to spare).
        string[] knobs = { "vt_size=64M", $"vt_rounds={Rounds}", "vt_bs=4k", "vt_qd=8", "vt_backlog=64" };
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
                if (MigIo(line) is (MigratedRound, int writes) && writes > 0)
                {
                    midRun.TrySetResult(writes);
                }
            }

            using var source = QemuGuest.Start(guest, work, "source", "migrate-verify", knobs,
                [.. BlkValidationTests.BlkDevice(backEndA.SocketPath, queues: 2), "-qmp", $"unix:{sourceQmp},server=on,wait=off"],
                TimeSpan.FromSeconds(150), OnSourceLine);
            Task first = await Task.WhenAny(midRun.Task, source.WaitAsync(TimeSpan.FromSeconds(120), ct));
            Assert.True(first == midRun.Task, $"the source never reached run {MigratedRound}'s writes:\n{source.Snapshot().Summary}");
            int writesAtMigrate = await midRun.Task;
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
            output.WriteLine($"migrate sent {bootedAt:F1} s in, at write {writesAtMigrate} of run {MigratedRound}: {ended}; query-migrate {info}");
            string backEnds = $"\nback end A:\n{string.Join('\n', backEndA.Log.TakeLast(20))}\nback end B:\n{string.Join('\n', backEndB.Log.TakeLast(20))}";
            Assert.True(info.GetProperty("status").GetString() == "completed", $"migration did not complete: {info}\nsource:\n{source.Snapshot().Summary}{backEnds}");
            Assert.Equal("postmigrate", sourceStatus);
            await destinationControl.WaitForEventAsync(e => QmpClient.IsEvent(e, "RESUME"), QmpLimit, ct);

            // The source is done: its console is whole once it has quit.
            await sourceControl.ExecuteAsync("quit", null, QmpLimit, ct);
            GuestRun before = await source.WaitAsync(TimeSpan.FromSeconds(30), ct);
            GuestRun after = await destination.WaitAsync(TimeSpan.FromSeconds(120), ct);
            output.WriteLine($"source:\n{before.Summary}\ndestination:\n{after.Summary}\nwhole row {clock.Elapsed.TotalSeconds:F1} s");

            // Migrated in the middle of run 1: it had written on the source and had not ended there,
            // and it wrote more on the destination before it verified clean there.
            Assert.True(before.Results.TryGetValue("migrate-verify-0", out var run0) && run0["status"] == "pass", $"run 0 did not pass on the source:\n{before.Summary}");
            Assert.False(before.Results.ContainsKey($"migrate-verify-{MigratedRound}"), $"run {MigratedRound} ended before the migration did: the row migrated between runs\n{before.Summary}");
            Assert.Null(before.DoneLine);
            int lastOnSource = before.Lines.Select(MigIo).Where(io => io?.Round == MigratedRound).Max(io => io!.Value.Writes);
            int lastOnDestination = after.Lines.Select(MigIo).Where(io => io?.Round == MigratedRound).Select(io => io!.Value.Writes).DefaultIfEmpty(-1).Max();
            Assert.True(lastOnDestination > lastOnSource, $"run {MigratedRound} did not go on on the destination (last writes seen: source {lastOnSource}, destination {lastOnDestination}):\n{after.Summary}");
            Assert.DoesNotContain(after.Lines, line => line.Contains("VTEST-INIT", StringComparison.Ordinal));

            Assert.True(after.Passed, $"the guest did not pass on the destination:\n{after.Summary}{backEnds}");
            Assert.Contains($"passed={Rounds} failed=0", after.DoneLine, StringComparison.Ordinal);
            for (int round = MigratedRound; round < Rounds; round++)
            {
                Assert.True(after.Results.TryGetValue($"migrate-verify-{round}", out var result) && result["status"] == "pass" && result["err"] == "0",
                    $"run {round} on the destination:\n{after.Summary}");
            }

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

    /// <summary>The run and write count of a "VTEST-MIG-IO round=R writes=N ..." line.</summary>
    private static (int Round, int Writes)? MigIo(string line)
    {
        int at = line.IndexOf("VTEST-MIG-IO ", StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var fields = GuestRun.Fields(line[at..]);
        return fields.TryGetValue("round", out string? round) && fields.TryGetValue("writes", out string? writes)
            && int.TryParse(round, NumberStyles.None, CultureInfo.InvariantCulture, out int r) && int.TryParse(writes, NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            ? (r, w) : null;
    }
}
