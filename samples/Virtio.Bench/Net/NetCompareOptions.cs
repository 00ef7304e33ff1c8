namespace Virtio.Bench.Net;

/// <summary>What <c>net-compare</c> runs, from its command line.</summary>
/// <param name="Rounds">Rounds; each boots the guest once per back end.</param>
/// <param name="IperfSeconds">iperf3 seconds per direction.</param>
/// <param name="Pings">Pings measured (one more is sent first, to resolve ARP, and left out).</param>
/// <param name="PingInterval">Seconds between pings.</param>
/// <param name="GuestDirectory">Where vmlinuz and initrd.cpio.gz of build-guest.sh are.</param>
/// <param name="DaemonDll">Our daemon's dll.</param>
/// <param name="WorkDirectory">Where console and back-end logs go (kept).</param>
/// <param name="BootTimeoutSeconds">Bound on each boot, from QEMU's start to its exit.</param>
internal sealed record NetCompareOptions(
    int Rounds,
    int IperfSeconds,
    int Pings,
    double PingInterval,
    string GuestDirectory,
    string DaemonDll,
    string WorkDirectory,
    int BootTimeoutSeconds);
