using System;
using System.Globalization;
using System.IO;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.Vmm.Tests;

/// <summary>
/// The sample VMM with <c>--transport pci</c> booting the real test guest on /dev/kvm: the guest finds
/// its devices by enumerating PCI bus 0 through ports 0xCF8/0xCFC, walks each virtio-pci function's
/// capabilities into the BARs the VMM placed, and takes its completions by MSI-X (one vector per queue)
/// or, with <c>--no-msix</c>, by INTx through the IOAPIC with the ISR read to clear it. Each test checks
/// on both sides which interrupts were used: the guest's line per device and the VMM's per-vector
/// counts at shutdown.
/// </summary>
public sealed class PciBootTests : IDisposable
{
    private readonly string _disk = Path.Combine(Path.GetTempPath(), $"virtio-vmm-pci-{Guid.NewGuid():N}.img");

    public PciBootTests()
    {
        using FileStream file = File.Create(_disk);
        file.SetLength(2 << 20);
    }

    public void Dispose() => File.Delete(_disk);

    [Fact]
    public async Task Pci_DefaultWorkload_WithMsiX_VerifiesAndPingsOnPerQueueVectors()
    {
        VmmProcess.SkipUnlessKvm();
        string net = VmmProcess.TapInNamespace(out string netns);
        VmmResult run = await VmmProcess.RunAsync("--guest", VmmProcess.Guest(), "--transport", "pci", "--disk", _disk, "--net", net);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("ok net-ping dev=1", run.Serial, StringComparison.Ordinal);
        Assert.Contains("received=3", run.Serial, StringComparison.Ordinal);
        // The guest found both functions on bus 0 (device 0 is the host bridge) and used MSI-X on each.
        Assert.Contains("guest: device 0: id 2 at pci 00:01.0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("guest: device 1: id 1 at pci 00:02.0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("guest: blk0 transport pci interrupts msix per-queue", run.Serial, StringComparison.Ordinal);
        Assert.Contains("guest: net1 transport pci interrupts msix per-queue", run.Serial, StringComparison.Ordinal);
        // The VMM delivered on the disk's queue vector (1), and the guest took it on the vector it programmed.
        Assert.Matches(@"disk0: MSI-X vectors fired \(vector=count, of 2\):.* 1=[1-9]", run.Log);
        // The card's replies may all be seen before the guest sleeps on its receive queue: its count may be none.
        Assert.Contains("net0: MSI-X vectors fired (vector=count, of 4):", run.Log, StringComparison.Ordinal);
        Assert.Matches(@"guest: msix dev=0 entry1=[1-9]", run.Serial);
        Assert.Matches(@"disk0: INTx asserted 0 time", run.Log);
        Assert.Contains(File.ReadAllBytes(_disk), b => b != 0);
        Assert.False(File.Exists($"/run/netns/{netns}"), "the namespace outlived the VMM");
    }

    [Fact]
    public async Task Pci_DefaultWorkload_NoMsiX_VerifiesAndPingsOverIntx()
    {
        VmmProcess.SkipUnlessKvm();
        string net = VmmProcess.TapInNamespace(out _);
        VmmResult run = await VmmProcess.RunAsync("--guest", VmmProcess.Guest(), "--transport", "pci", "--no-msix", "--disk", _disk, "--net", net);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("ok net-ping dev=1", run.Serial, StringComparison.Ordinal);
        Assert.Contains("msix 0 entries", run.Serial, StringComparison.Ordinal);
        Assert.Contains("guest: blk0 transport pci interrupts intx gsi 5 vector 0x30 (ioapic, level)", run.Serial, StringComparison.Ordinal);
        Assert.Contains("guest: net1 transport pci interrupts intx gsi 6 vector 0x31 (ioapic, level)", run.Serial, StringComparison.Ordinal);
        Assert.Matches(@"interrupts per device: [1-9]", run.Serial);
        Assert.Contains("no MSI-X (INTx only)", run.Log, StringComparison.Ordinal);
        Assert.Matches(@"disk0: INTx asserted [1-9]", run.Log);
        Assert.DoesNotContain("MSI-X vectors fired", run.Log, StringComparison.Ordinal);
        // The guest's ISR read cleared the cause: the line came again after an end of interrupt only for a
        // completion that landed in between, never more often than the disk has requests (2 MiB in 64 KiB
        // writes and reads: 64). A guest that does not read the ISR is interrupted thousands of times.
        Assert.InRange(Reasserted(run, "disk0"), 0, 64);
        Assert.InRange(Reasserted(run, "net0"), 0, 16);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Pci_PackedRing_EveryDiskWorkloadPasses(bool msiX)
    {
        // The packed ring behind virtio-pci, on MSI-X and on INTx; queue_size=7 wraps the ring every few requests.
        VmmProcess.SkipUnlessKvm();
        string[] common = ["--guest", VmmProcess.Guest(), "--transport", "pci", "--packed", "--disk", _disk,
            "--workload", "blk-verify,blk-flush,blk-discard,blk-rand", "--guest-args", "ops=100 queue_size=7"];
        VmmResult run = await VmmProcess.RunAsync(msiX ? common : [.. common, "--no-msix"]);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("guest: blk0 uses the packed ring (VIRTIO_F_RING_PACKED negotiated)", run.Serial, StringComparison.Ordinal);
        foreach (string workload in new[] { "blk-verify", "blk-flush", "blk-discard", "blk-rand" })
        {
            Assert.Contains($"ok {workload} dev=0", run.Serial, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("ring=split", run.Serial, StringComparison.Ordinal);
        Assert.Matches(!msiX ? @"disk0: INTx asserted [1-9]" : @"disk0: MSI-X vectors fired .* 1=[1-9]", run.Log);
    }

    [Theory]
    [InlineData("completion=irq", "msix per-queue")]
    [InlineData("completion=irq msix_shared=1", "msix shared")]
    [InlineData("completion=poll", "none (polling)")]
    public async Task Pci_NoIoEventFd_DoorbellsExitToTheVmm_AndEveryCompletionModePasses(string guestArgs, string mode)
    {
        // Every notify is an MMIO write into BAR 0 that exits to the VMM and reaches the function through
        // the hole's bus window; interrupts per queue, on one vector shared by the queues (Linux's first
        // fallback), or none while the guest polls.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", VmmProcess.Guest(), "--transport", "pci", "--no-ioeventfd",
            "--disk", _disk, "--workload", "blk-verify", "--guest-args", guestArgs);

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("notify by MMIO exit", run.Log, StringComparison.Ordinal);
        Assert.Contains("guest: blk0 transport pci interrupts " + mode, run.Serial, StringComparison.Ordinal);
        Assert.Matches(mode == "none (polling)" ? @"disk0: MSI-X vectors fired \(vector=count, of 2\): none" : @"disk0: MSI-X vectors fired .* 1=[1-9]", run.Log);
    }

    [Fact]
    public async Task Pci_IntxIsrLeftUnread_LineComesAgainAfterEndOfInterrupt()
    {
        // The guest takes one completion's INTx without reading the ISR (which would clear it) and sends
        // EOI: the line must come again, as a PCI INTx line is a level held while the ISR is set.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", VmmProcess.Guest(), "--transport", "pci", "--no-msix",
            "--disk", _disk, "--workload", "irq-level,blk-verify");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Matches(@"result irq-level dev=0 interrupts=[2-9]", run.Serial);
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Matches(@"disk0: INTx asserted [1-9][0-9]* time\(s\), raised again [1-9]", run.Log);
        Assert.InRange(Reasserted(run, "disk0"), 1, 64 + 2);
    }

    [Fact]
    public async Task Pci_Doorbell_WritesTheQueueNotifyAddressOnAnIoEventFd()
    {
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", VmmProcess.Guest(), "--transport", "pci", "--disk", _disk,
            "--workload", "doorbell", "--guest-args", "count=2000");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Matches(@"result doorbell dev=0 count=2000 .* ioeventfd=1 transport=pci", run.Serial);
        Assert.Contains("notify by ioeventfd", run.Log, StringComparison.Ordinal);
        // 2000 kicks on the ioeventfd: they do not exit to the VMM (the guest's set-up takes a few hundred MMIO exits).
        Assert.Matches(@"vCPU exits: [0-9]{1,3} MMIO", run.Log);
    }

    [Fact]
    public async Task Pci_GuestMovesBar0_DoorbellsFollowOnIoEventFds()
    {
        // The guest moves BAR 0 (common, ISR, device config, doorbells) 16 MiB up before using it: the
        // hole's bus window still reaches it, and the doorbells' ioeventfds move with it, so 2000 kicks
        // still do not exit to the VMM.
        VmmProcess.SkipUnlessKvm();
        VmmResult run = await VmmProcess.RunAsync("--guest", VmmProcess.Guest(), "--transport", "pci", "--disk", _disk,
            "--workload", "blk-verify,doorbell", "--guest-args", "pci_move_bars=1 count=2000");

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("guest: pci 00:01.0 BAR 0 moved from 0xe0000000 to 0xe1000000", run.Serial, StringComparison.Ordinal);
        Assert.Contains("ok blk-verify dev=0", run.Serial, StringComparison.Ordinal);
        Assert.Contains("disk0: the guest moved the doorbells from 0xe0003000 to 0xe1003000: every queue's ioeventfd is there", run.Log, StringComparison.Ordinal);
        Assert.Matches(@"result doorbell dev=0 count=2000 .* ioeventfd=1 transport=pci", run.Serial);
        Assert.Matches(@"vCPU exits: [0-9]{1,3} MMIO", run.Log);
    }

    /// <summary>How often the VMM raised <paramref name="name"/>'s INTx line again after an end of interrupt.</summary>
    private static long Reasserted(VmmResult run, string name)
    {
        Match m = Regex.Match(run.Log, name + @": INTx asserted [0-9]+ time\(s\), raised again ([0-9]+) time");
        Assert.True(m.Success, run.ToString());
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
