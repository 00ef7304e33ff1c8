using System;
using System.IO;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using Virtio.Net.Backends;
using Xunit;

namespace Virtio.Net.Tests.Backends;

/// <summary>
/// The TAP backend's kernel side: TUNSETOFFLOAD follows the offloads the guest negotiated (read back with
/// the SIOCETHTOOL legacy getters), and a caller without CAP_NET_ADMIN gets a message that says so. The
/// interfaces stay down and live only for the test: they carry no traffic.
/// </summary>
public sealed partial class TapOffloadTests
{
    private const uint SiocEthtool = 0x8946;
    private const uint EthtoolGetTxCsum = 0x16;
    private const uint EthtoolGetTso = 0x1e;
    private const int CapNetAdmin = 12;
    private const uint CapabilityVersion3 = 0x20080522;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Tap_OffloadsFollowTheNegotiatedGuestFeatures(bool guestOffloads)
    {
        SkipUnlessRootWithTun();
        string name = "vno" + Random.Shared.Next(0x10000, 0xFFFFF).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        using TapNetBackend tap = TapNetBackend.Create(name);

        // Until a driver says otherwise the kernel must hand over complete frames.
        Assert.False(EthtoolGet(name, EthtoolGetTso), "TSO before DRIVER_OK");
        Assert.False(EthtoolGet(name, EthtoolGetTxCsum), "checksum offload before DRIVER_OK");

        ulong wanted = guestOffloads ? ulong.MaxValue : ~(NetFeatures.GuestCsum | NetFeatures.GuestTso4 | NetFeatures.GuestTso6);
        using var rig = new NetRig([tap], new NetDeviceOptions(), wanted);
        Assert.Equal(guestOffloads, (rig.Features & NetFeatures.GuestTso4) != 0);
        Assert.Equal(guestOffloads, EthtoolGet(name, EthtoolGetTso));
        Assert.Equal(guestOffloads, EthtoolGet(name, EthtoolGetTxCsum));
    }

    [Fact]
    public void Tap_WithoutCapNetAdmin_TheErrorSaysSo()
    {
        SkipUnlessRootWithTun();
        Exception? caught = null;

        // Capabilities are per thread: drop CAP_NET_ADMIN from this thread's effective set only.
        var thread = new Thread(() =>
        {
            try
            {
                DropEffectiveCapability(CapNetAdmin);
                using TapNetBackend tap = TapNetBackend.Create("vnoperm0");
            }
            catch (Exception exception)
            {
                caught = exception;
            }
        });
        thread.Start();
        Assert.True(thread.Join(NetRig.Timeout));

        UnauthorizedAccessException refused = Assert.IsType<UnauthorizedAccessException>(caught);
        Assert.Contains("CAP_NET_ADMIN", refused.Message, StringComparison.Ordinal);
    }

    private static void SkipUnlessRootWithTun()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "TAP interfaces need Linux.");
        Assert.SkipUnless(Environment.IsPrivilegedProcess, "Needs root (CAP_NET_ADMIN) to create a TAP interface.");
        Assert.SkipUnless(File.Exists("/dev/net/tun"), "/dev/net/tun is missing.");
    }

    private static unsafe bool EthtoolGet(string interfaceName, uint command)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        uint* value = stackalloc uint[2];
        value[0] = command;
        value[1] = 0;
        byte* ifreq = stackalloc byte[40];
        new Span<byte>(ifreq, 40).Clear();
        Encoding.ASCII.GetBytes(interfaceName, new Span<byte>(ifreq, 15));
        *(nint*)(ifreq + 16) = (nint)value;

        // SAFETY: ifreq is sizeof(struct ifreq) on the stack and points at an ethtool_value on the stack;
        // both outlive the call.
        int rc = Ioctl((int)socket.Handle, SiocEthtool, ifreq);
        Assert.True(rc == 0, $"SIOCETHTOOL {command:x} on {interfaceName} failed: errno {Marshal.GetLastPInvokeError()}");
        return value[1] != 0;
    }

    private static unsafe void DropEffectiveCapability(int capability)
    {
        uint* header = stackalloc uint[2];
        header[0] = CapabilityVersion3;
        header[1] = 0; // this thread
        uint* data = stackalloc uint[6]; // two __user_cap_data_struct: effective, permitted, inheritable

        // SAFETY: header and data are stack buffers of the sizes the version-3 ABI reads and writes.
        Assert.Equal(0, CapGet(header, data));
        data[0] &= ~(1u << capability);
        Assert.Equal(0, CapSet(header, data));
    }

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    [LibraryImport("libc", EntryPoint = "capget", SetLastError = true)]
    private static unsafe partial int CapGet(uint* header, uint* data);

    [LibraryImport("libc", EntryPoint = "capset", SetLastError = true)]
    private static unsafe partial int CapSet(uint* header, uint* data);
}
