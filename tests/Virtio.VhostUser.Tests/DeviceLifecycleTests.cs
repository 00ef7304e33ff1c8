using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Memory;
using Virtio.Testing;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;
using Virtio.VhostUser.Tests.FrontEnd;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// SET_STATUS, GET_STATUS and RESET_DEVICE (docs/vhost-user.md, "Reset and status") through our own
/// front end: QEMU 7.2's stop order (SET_STATUS 0 before GET_VRING_BASE), the status round trip with
/// DEVICE_NEEDS_RESET, a reset with requests in flight, and the hostile payloads.
/// </summary>
public sealed class DeviceLifecycleTests
{
    private const VhostUserProtocolFeatures Wanted = VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config
        | VhostUserProtocolFeatures.MultiQueue | VhostUserProtocolFeatures.ResetDevice | VhostUserProtocolFeatures.Status;

    private const byte DriverOkStatus = 0x0F; // ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK
    private const byte NeedsReset = 0x40;
    private const ulong StatusBits = (1ul << 13) | (1ul << 16);

    [Fact]
    public void BothFeatures_AreOffered()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath, Wanted);
        Assert.Equal(Wanted, client.Negotiation.ProtocolFeatures & Wanted);
    }

    /// <summary>QEMU 7.2 stops a device with SET_STATUS 0, then GET_VRING_BASE: the ring's position survives the reset between.</summary>
    [Fact]
    public void StatusZeroBeforeGetVringBase_ReturnsWhereTheRingStopped_AndTheDeviceStartsAgainThere()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath, Wanted);
        client.Start();
        client.FrontEnd.SetStatus(DriverOkStatus);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(0, client.Request(BlkFrontEndClient.Out, (ulong)i, BlkServerRig.Pattern(512, (byte)i)).Status);
        }

        client.FrontEnd.SetStatus(0);
        Assert.Equal(0, client.FrontEnd.GetStatus());
        client.FrontEnd.SetVringEnable(0, false);
        Assert.Equal(3, client.FrontEnd.GetVringBase(0));
        Assert.True(rig.WaitForLog(4060, "device stopped and reset on SetStatus"));

        // The front end starts it again where it stopped: features first (the reset cleared them).
        client.FrontEnd.SetFeatures(client.Negotiation.Features);
        client.FrontEnd.StartVring(0, new VhostUserVringSetup(BlkFrontEndClient.QueueSize, client.Driver.DescriptorTable, client.Driver.AvailRing, client.Driver.UsedRing, client.Kick, client.Call, NextAvail: 3));
        (byte status, byte[] data) = client.Request(BlkFrontEndClient.In, 2, readLength: 512);
        Assert.Equal(0, status);
        Assert.Equal(BlkServerRig.Pattern(512, 2), data);
    }

    [Fact]
    public void Status_RoundTrips_AndReportsNeedsResetOnceARingBroke_UntilStatusZero()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath, Wanted);
        Assert.Equal(0, client.FrontEnd.GetStatus());
        client.Start();
        client.FrontEnd.SetStatus(0x0B);
        Assert.Equal(0x0B, client.FrontEnd.GetStatus());
        client.FrontEnd.SetStatus(DriverOkStatus | NeedsReset); // the device's bit: not kept from the front end
        Assert.Equal(DriverOkStatus, client.FrontEnd.GetStatus());

        // A head past the ring size breaks the queue: DEVICE_NEEDS_RESET.
        client.Driver.PutOnAvailRing(999);
        client.Driver.SetAvailIndex((ushort)(client.Driver.AvailIndex + 1));
        client.Kick.Signal();
        Assert.True(rig.WaitForLog(1101, "needs reset"), "the device did not log a needs-reset");
        Assert.Equal(DriverOkStatus | NeedsReset, client.FrontEnd.GetStatus());

        client.FrontEnd.SetStatus(0);
        Assert.Equal(0, client.FrontEnd.GetStatus());
    }

    /// <summary>
    /// RESET_DEVICE with four writes held at the backend: it waits for them (each completes at its own
    /// head with its own data on the disk), then the ring forgets its state (base 0) and the device
    /// serves a new driver on a fresh ring.
    /// </summary>
    [Fact]
    public void ResetDevice_WithRequestsInFlight_DrainsThemAll_ThenTheDeviceStartsFromNothing()
    {
        var disk = new MemoryBlockBackend(8 << 20);
        var holding = new HoldingBackend(disk);
        using var rig = new BlkServerRig(backend: holding);
        using var client = new BlkFrontEndClient(rig.SocketPath, Wanted);
        client.Start();
        GuestDriver driver = client.Driver;
        var heads = new Dictionary<ushort, int>();
        for (int i = 0; i < 4; i++)
        {
            heads.Add(Post(driver, (ulong)(8 * i), BlkServerRig.Pattern(512, (byte)(10 + i))), i);
        }

        driver.Kick();
        client.Kick.Signal();
        SpinUntil(() => holding.HeldCount == 4, "the four writes did not reach the backend");

        // RESET_DEVICE has no reply of its own; with REPLY_ACK the front end waits for its ack, which
        // comes once the drain is over: release the writes from another thread once the drain waits.
        var release = new Thread(() =>
        {
            SpinUntil(() => rig.Logger.Entries.Any(e => e.EventId.Id == 4021), "the reset did not wait for the in-flight writes");

            // Without FLUSH negotiated each write is followed by a flush (writethrough), held too.
            SpinUntil(() =>
            {
                holding.Release();
                return rig.Logger.Entries.Any(e => e.EventId.Id == 4007);
            }, "the ring did not stop once the writes were released");
        });
        release.Start();
        client.FrontEnd.ResetDevice();
        Assert.True(release.Join(TimeSpan.FromSeconds(20)), "the release thread did not finish");

        var completed = new Dictionary<ushort, byte>();
        while (driver.TryGetUsed(out ushort head, out _))
        {
            completed.Add(head, driver.Span(driver.ChainBuffers(head)[^1].Address, 1)[0]);
        }

        Assert.Equal(heads.Keys.Order(), completed.Keys.Order());
        Assert.All(completed.Values, status => Assert.Equal(0, status));
        Assert.Equal(0, client.FrontEnd.GetStatus());
        Assert.Equal(0, client.FrontEnd.GetVringBase(0)); // the ring forgot where it was
        Assert.True(rig.WaitForLog(4063, "device reset on RESET_DEVICE"));

        // A new driver on a fresh ring: features, ring setup from nothing, and each write's data is where it was sent.
        using var fresh = new GuestDriver(client.Memory, new GuestAddress(0x80000), BlkFrontEndClient.QueueSize, 6 << 20, 4096, eventIdx: false, indirect: false, heapSize: 1 << 20);
        client.FrontEnd.SetFeatures(client.Negotiation.Features);
        client.FrontEnd.StartVring(0, new VhostUserVringSetup(BlkFrontEndClient.QueueSize, fresh.DescriptorTable, fresh.AvailRing, fresh.UsedRing, client.Kick, client.Call));
        for (int i = 0; i < 4; i++)
        {
            ushort head = PostRead(fresh, (ulong)(8 * i));
            fresh.Kick();
            client.Kick.Signal();
            ushort used = 0;
            SpinUntil(() =>
            {
                holding.Release(); // from now on straight through
                return fresh.TryGetUsed(out used, out _);
            }, "the reset device served nothing");
            Assert.Equal(head, used);
            var buffers = fresh.ChainBuffers(head);
            Assert.Equal(0, fresh.Span(buffers[^1].Address, 1)[0]);
            Assert.Equal(BlkServerRig.Pattern(512, (byte)(10 + i)), fresh.Span(buffers[1].Address, 512).ToArray());
        }

        Assert.DoesNotContain(rig.Logger.Entries, e => e.EventId.Id == 4004);
    }

    [Theory]
    [InlineData(39u, 4, "SetStatus: payload of 4 bytes, expected 8")]
    [InlineData(40u, 8, "GetStatus: payload of 8 bytes, expected 0")]
    [InlineData(34u, 8, "ResetDevice: payload of 8 bytes, expected 0")]
    public void WrongPayloadSize_ClosesTheConnection(uint request, int size, string reason) =>
        BadMessageTests.AssertRejected(frontEnd =>
        {
            frontEnd.Send64(16, StatusBits);
            frontEnd.Send(request, new byte[size]);
        }, reason);

    [Fact]
    public void StatusOverAByte_ClosesTheConnection() =>
        BadMessageTests.AssertRejected(frontEnd =>
        {
            frontEnd.Send64(16, StatusBits);
            frontEnd.Send64(39, 0x10F);
        }, "SET_STATUS: 0x10f is not a status byte");

    [Theory]
    [InlineData(39u, 8, "SetStatus without VHOST_USER_PROTOCOL_F_STATUS negotiated")]
    [InlineData(40u, 0, "GetStatus without VHOST_USER_PROTOCOL_F_STATUS negotiated")]
    [InlineData(34u, 0, "ResetDevice without VHOST_USER_PROTOCOL_F_RESET_DEVICE negotiated")]
    public void WithoutTheFeature_ClosesTheConnection(uint request, int size, string reason) =>
        BadMessageTests.AssertRejected(frontEnd =>
        {
            frontEnd.Send64(16, 1ul << 3); // REPLY_ACK only
            frontEnd.Send(request, new byte[size]);
        }, reason);

    private static ushort Post(GuestDriver driver, ulong sector, byte[] data)
    {
        ushort head = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Readable(data.Length), BufferSpec.Write(1));
        var buffers = driver.ChainBuffers(head);
        Header(driver, buffers[0].Address, BlkFrontEndClient.Out, sector);
        data.CopyTo(driver.Span(buffers[1].Address, data.Length));
        driver.Span(buffers[^1].Address, 1)[0] = 0xFF;
        return head;
    }

    private static ushort PostRead(GuestDriver driver, ulong sector)
    {
        ushort head = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(512), BufferSpec.Write(1));
        var buffers = driver.ChainBuffers(head);
        Header(driver, buffers[0].Address, BlkFrontEndClient.In, sector);
        driver.Span(buffers[^1].Address, 1)[0] = 0xFF;
        return head;
    }

    private static void Header(GuestDriver driver, GuestAddress at, uint type, ulong sector)
    {
        Span<byte> header = driver.Span(at, 16);
        BinaryPrimitives.WriteUInt32LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], sector);
    }

    private static void SpinUntil(Func<bool> condition, string message) =>
        Assert.True(SpinWait.SpinUntil(condition, TimeSpan.FromSeconds(10)), message);
}
