using System;
using System.IO;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.Vmm.Tests;

/// <summary>
/// The sample VMM booting the real test guest on /dev/kvm: the guest writes and verifies a disk with
/// queue notifies on ioeventfds and with every notify exiting to the VMM, on the split and (--packed) the
/// packed virtqueue, pings the tap's address in a namespace the VMM makes, and a file that is not a guest
/// is refused with a clear message.
/// </summary>
public sealed class BootTests : IDisposable
{
    private readonly string _disk = Path.Combine(Path.GetTempPath(), $"virtio-vmm-test-{Guid.NewGuid():N}.img");

    public BootTests()
    {
        using FileStream file = File.Create(_disk);
        file.SetLength(2 << 20);
    }

    public void Dispose() => File.Delete(_disk);

    [Fact]
    public async Task Boot_DiskVerify_ThroughIoEventFd_Passes()
    {
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", Guest(), "--disk", _disk, "--workload", "blk-verify");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("done status=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("notify by ioeventfd", run.Log, StringComparison.Ordinal);
        // Without --packed the disk does not offer the packed ring and the guest stays on the split one.
        Assert.Contains("guest: blk0 uses the split ring (VIRTIO_F_RING_PACKED not offered)", run.Serial, StringComparison.Ordinal);
        Assert.Matches(@"result blk-verify dev=0 .* ring=split", run.Serial);
        // The disk really holds what the guest wrote: not all zeroes any more.
        Assert.Contains(File.ReadAllBytes(_disk), b => b != 0);
    }

    [Theory]
    [InlineData("ops=100")]
    [InlineData("ops=100 queue_size=7 indirect=0")]
    [InlineData("ops=100 queue_size=33 event_idx=0 completion=irq")]
    public async Task Boot_PackedRing_EveryDiskWorkloadPasses(string guestArgs)
    {
        // --packed: the disk offers VIRTIO_F_RING_PACKED and the guest drives the packed layout. The two
        // layouts share no structure (a split driver's avail ring is a packed device's event area), so a
        // workload that passes with ring=packed ran on the packed ring on both sides. queue_size=7 with three
        // descriptors per request wraps the ring every few requests, chains crossing its end; 33 is not a
        // power of two; event_idx=0 and completion=irq take the ENABLE/DISABLE suppression paths.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", Guest(), "--disk", _disk, "--packed",
            "--workload", "blk-verify,blk-flush,blk-discard,blk-rand", "--guest-args", guestArgs);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("guest: blk0 uses the packed ring (VIRTIO_F_RING_PACKED negotiated)", run.Serial, StringComparison.Ordinal);
        Assert.Matches(@"result blk-verify dev=0 .* ring=packed", run.Serial);
        foreach (string workload in new[] { "blk-verify", "blk-flush", "blk-discard", "blk-rand" })
        {
            Assert.Contains($"ok {workload} dev=0", run.Serial, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("ring=split", run.Serial, StringComparison.Ordinal);
        Assert.Contains("done status=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains(File.ReadAllBytes(_disk), b => b != 0);
    }

    [Theory]
    [InlineData("--no-ioeventfd", "--no-irq-batching", "notify by MMIO exit")]
    [InlineData("--guest-args", "completion=irq", "guest: completion by interrupt")]
    public async Task Boot_DiskVerify_OtherNotifyAndCompletionPaths_Pass(string option, string value, string expected)
    {
        // With completion=irq the guest sleeps in hlt and asks for an interrupt only just before (used_event
        // armed, then the used ring checked once more): a completion published in between must still wake it.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", Guest(), "--disk", _disk, "--workload", "blk-verify", option, value);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains(expected, run.Serial + run.Log, StringComparison.Ordinal);
        if (value == "completion=irq")
        {
            // The device's irqfd really reached the guest through the VMM's GSI routing table (the
            // guest's watchdog timer alone would also end its hlt waits).
            Assert.Matches(@"interrupts per device: [1-9]", run.Serial);
        }
    }

    [Fact]
    public async Task Boot_IrqLevel_InterruptLeftUnacknowledged_ComesAgainAfterEndOfInterrupt()
    {
        // The guest takes one completion's interrupt without acknowledging InterruptStatus and sends
        // EOI: KVM lowers the level-triggered line and signals the resample fd, and the VMM must raise
        // the line again because the status is still set, as a level line would stay high.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", Guest(), "--disk", _disk, "--workload", "irq-level,blk-verify",
            "--guest-args", "completion=irq", "--irq-level");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Matches(@"result irq-level dev=0 interrupts=[2-9]", run.Serial);
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("level-triggered", run.Log, StringComparison.Ordinal);
        Assert.Matches(@"disk0: level-triggered line raised again [1-9]", run.Log);
    }

    [Fact]
    public async Task Boot_IrqEdge_InterruptLeftUnacknowledged_DoesNotComeAgain()
    {
        // The control for the test above: on an edge-triggered line the same guest sees one interrupt
        // only, so its irq-level check tells the two apart.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", Guest(), "--disk", _disk, "--workload", "irq-level",
            "--guest-args", "completion=irq");

        Assert.True(run.ExitCode != 0, run.ToString());
        Assert.Contains("result irq-level dev=0 interrupts=1 held=1", run.Serial, StringComparison.Ordinal);
        Assert.Contains("fail irq-level dev=0 reason=not-reasserted", run.Serial, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Boot_NetPing_ReachesTheTapAddressInANamespace()
    {
        VmmProcess.SkipUnlessKvm();
        string net = VmmProcess.TapInNamespace(out string netns);
        VmmResult run = await VmmProcess.RunAsync("--guest", Guest(), "--net", net, "--workload", "net-ping");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("ok net-ping dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("received=3", run.Serial, StringComparison.Ordinal);
        Assert.False(File.Exists($"/run/netns/{netns}"), "the namespace outlived the VMM");
    }

    [Fact]
    public async Task Boot_NotAnElfFile_IsRefusedWithTheReason()
    {
        string bad = Path.Combine(Path.GetTempPath(), $"virtio-vmm-bad-{Guid.NewGuid():N}.elf");
        await File.WriteAllTextAsync(bad, "this is not a guest", TestContext.Current.CancellationToken);
        try
        {
            VmmResult run = await VmmProcess.RunAsync("--guest", bad, "--disk", _disk);

            Assert.True(run.ExitCode == 125, run.ToString());
            Assert.Contains("refusing the guest image", run.Log, StringComparison.Ordinal);
            Assert.Contains("not an ELF file", run.Log, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(bad);
        }
    }

    [Fact]
    public async Task Boot_InstructionTheEmulatorCannotRun_FailsWithTheGuestRip()
    {
        VmmProcess.SkipUnlessKvm();
        // xor eax, eax; xrstor [rax]; hlt. kvm_pvm's emulator cannot run XRSTOR (an emulation failure);
        // hardware raises #UD, which with no IDT is a triple fault. Either way: exit 125 with the RIP.
        byte[] code = [0x31, 0xC0, 0x0F, 0xAE, 0x28, 0xF4];
        string path = Path.Combine(Path.GetTempPath(), $"virtio-vmm-xrstor-{Guid.NewGuid():N}.elf");
        await File.WriteAllBytesAsync(path, TestElf.Build(0x100000, (ulong)code.Length, 0x1000, 0x100000, code), TestContext.Current.CancellationToken);
        try
        {
            VmmResult result = await VmmProcess.RunAsync("--guest", path, "--disk", _disk);

            Assert.True(result.ExitCode == 125, result.ToString());
            Assert.Matches("(The guest failed: KVM internal error|triple fault).*RIP 0x10000", result.Log);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Boot_CtrlC_StopsTheGuestAndShutsDownCleanly()
    {
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAndInterruptAsync(
            "workload blk-rand", "--guest", Guest(), "--disk", _disk, "--workload", "blk-rand", "--guest-args", "ops=1000000");

        Assert.True(run.ExitCode == 130, run.ToString());
        Assert.Contains("Interrupted: stopping the guest", run.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("done status", run.Serial, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", run.Log, StringComparison.Ordinal);
    }

    private static string Guest() => VmmProcess.Guest();
}
