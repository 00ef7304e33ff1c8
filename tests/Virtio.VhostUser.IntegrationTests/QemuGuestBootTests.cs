using System;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The harness's boot watchdog (<see cref="QemuGuest"/>'s remarks): a kernel that hangs before init
/// is booted once more, and a QEMU that never runs the guest, as with a back end that does not
/// answer, is not.
/// </summary>
[Collection("linux-guest")]
public sealed class QemuGuestBootTests(ITestOutputHelper output)
{
    private static readonly TimeSpan BootLimit = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task KernelHungBeforeInit_IsBootedOnceMore()
    {
        HostRequirements.RequireQemu();
        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create("boot-hang");

        // No such init in the initramfs: the kernel tries the root device, finds none and panics,
        // printing its lines but never VTEST-INIT.
        using var qemu = QemuGuest.Start(guest, work, "hang", "none", ["rdinit=/no-such-init"], [], Limit, bootLimit: BootLimit);
        GuestRun run = await qemu.WaitAsync(Limit + TimeSpan.FromSeconds(10), ct);

        // The second boot hangs the same way and ends at its own bound.
        Assert.Equal(2, qemu.Boots);
        Assert.Equal(124, run.ExitCode);
        Assert.Contains(run.Lines, line => line.StartsWith('['));
        Assert.DoesNotContain(run.Lines, line => line.Contains("VTEST-INIT", StringComparison.Ordinal));
        string first = Path.Combine(work, "hang.console.log");
        Assert.Contains(File.ReadLines(first), line => line.Contains("did not reach init", StringComparison.Ordinal));
        Assert.Equal(Path.Combine(work, "hang.console.boot2.log"), qemu.ConsoleLog);
        Assert.Contains(File.ReadLines(qemu.ConsoleLog), line => line.Contains("second boot", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SilentBackEnd_QemuNeverRunsTheGuest_IsNotBootedAgain()
    {
        HostRequirements.RequireQemu();
        var ct = TestContext.Current.CancellationToken;
        string guest = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create("boot-silent");
        string socketPath = Path.Combine(work, "silent.sock");

        // A vhost-user "back end" that accepts and never answers: QEMU waits for its GET_FEATURES
        // reply while realizing the device, before the guest runs.
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        Task<Socket> accepted = listener.AcceptAsync(ct).AsTask();

        using var qemu = QemuGuest.Start(guest, work, "silent", "none", [], BlkValidationTests.BlkDevice(socketPath, queues: 1), Limit, bootLimit: BootLimit);
        GuestRun run = await qemu.WaitAsync(Limit + TimeSpan.FromSeconds(10), ct);
        using Socket connection = await accepted.WaitAsync(TimeSpan.FromSeconds(5), ct);

        Assert.Equal(124, run.ExitCode);
        Assert.Equal(1, qemu.Boots);
        Assert.DoesNotContain(run.Lines, line => line.StartsWith('['));
        Assert.DoesNotContain(File.ReadLines(qemu.ConsoleLog), line => line.Contains("did not reach init", StringComparison.Ordinal));
    }
}
