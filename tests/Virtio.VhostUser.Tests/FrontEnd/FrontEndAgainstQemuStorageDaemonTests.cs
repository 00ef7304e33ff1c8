using System;
using System.IO;
using Xunit;

namespace Virtio.VhostUser.Tests.FrontEnd;

/// <summary>The library front end against QEMU's back end (qemu-storage-daemon, libvhost-user).</summary>
public sealed class FrontEndAgainstQemuStorageDaemonTests : IDisposable
{
    private const int ImageSize = 8 << 20;
    private readonly string _directory = Directory.CreateTempSubdirectory("vhost-frontend-qsd-").FullName;
    private readonly string _image;
    private readonly string _socket;

    public FrontEndAgainstQemuStorageDaemonTests()
    {
        _image = Path.Combine(_directory, "disk.img");
        _socket = Path.Combine(_directory, "qsd.sock");
        using FileStream file = File.Create(_image);
        file.SetLength(ImageSize);
        file.Position = 100 * BlkServerRig.Sector;
        file.Write(BlkServerRig.Pattern(512, 42));
    }

    [Fact]
    public void Negotiate_GetConfig_CapacityMatchesTheImage()
    {
        using var daemon = new QemuStorageDaemon(_image, _socket);
        using var client = new BlkFrontEndClient(_socket);

        Assert.Equal((ulong)ImageSize / BlkServerRig.Sector, client.CapacitySectors());
        Assert.Equal(daemon.ProcessId, client.FrontEnd.PeerProcessId);
    }

    [Fact]
    public void WriteThenRead_RoundTripsAndReachesTheImage()
    {
        byte[] pattern = BlkServerRig.Pattern(4096, 9);
        using (var daemon = new QemuStorageDaemon(_image, _socket))
        using (var client = new BlkFrontEndClient(_socket))
        {
            client.Start();
            (byte status, byte[] existing) = client.Request(BlkFrontEndClient.In, 100, readLength: 512);
            Assert.Equal(0, status);
            Assert.Equal(BlkServerRig.Pattern(512, 42), existing);

            Assert.Equal(0, client.Request(BlkFrontEndClient.Out, 24, writeData: pattern).Status);
            (status, byte[] readBack) = client.Request(BlkFrontEndClient.In, 24, readLength: 4096);
            Assert.Equal(0, status);
            Assert.Equal(pattern, readBack);
            Assert.True(client.FrontEnd.GetVringBase(0) == 3, "qemu-storage-daemon stops the ring after the three requests");
        }

        byte[] onDisk = new byte[4096];
        using FileStream file = File.OpenRead(_image);
        file.Position = 24 * BlkServerRig.Sector;
        file.ReadExactly(onDisk);
        Assert.Equal(pattern, onDisk);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
