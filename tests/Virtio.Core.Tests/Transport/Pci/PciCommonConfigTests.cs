using System;
using Virtio.Core.Devices;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>The common configuration structure's fields (virtio 1.2 §4.1.4.3) and the width rules of §4.1.3.</summary>
public sealed class PciCommonConfigTests
{
    private static PciRig Probed(int queues = 3, ushort queueMaxSize = 128, ulong features = VirtioFeatures.CoreDefaults, VirtioPciFunctionOptions? options = null)
    {
        var rig = new PciRig(queues, queueMaxSize, options, features: features);
        rig.Driver.Probe();
        return rig;
    }

    [Fact]
    public void ReadOnlyFields_ReadTheDevicesValues()
    {
        using var rig = Probed(queues: 3, queueMaxSize: 128);
        PciDriver d = rig.Driver;
        Assert.Equal(3u, d.ReadCommon(VirtioPciCommonConfig.NumQueues, 2));
        Assert.Equal(rig.Device.DeviceFeatures, d.ReadDeviceFeatures());
        d.WriteCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4, 2);
        Assert.Equal(2u, d.ReadCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4));
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.DeviceFeature, 4));
        d.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 2);
        Assert.Equal(2u, d.ReadCommon(VirtioPciCommonConfig.QueueSelect, 2));
        Assert.Equal(128u, d.ReadCommon(VirtioPciCommonConfig.QueueSize, 2));
        Assert.Equal(2u, d.ReadCommon(VirtioPciCommonConfig.QueueNotifyOff, 2));
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.QueueEnable, 2));
        d.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 3); // no such queue
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.QueueSize, 2));
        Assert.Equal(0xFFFFu, d.ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2));
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.ConfigGeneration, 1));
        rig.Device.ChangeConfig(0, 0x99);
        Assert.Equal(1u, d.ReadCommon(VirtioPciCommonConfig.ConfigGeneration, 1));
        Assert.Equal(0x99u, d.ReadDeviceConfig(0, 1));
    }

    [Theory]
    [InlineData(VirtioPciCommonConfig.DeviceFeature, 4)]
    [InlineData(VirtioPciCommonConfig.NumQueues, 2)]
    [InlineData(VirtioPciCommonConfig.ConfigGeneration, 1)]
    [InlineData(VirtioPciCommonConfig.QueueNotifyOff, 2)]
    public void ReadOnlyFields_IgnoreWrites_AndLogOnce(int offset, int width)
    {
        using var rig = Probed();
        uint before = rig.Driver.ReadCommon(offset, width);
        rig.Driver.WriteCommon(offset, width, 0x5A5A_5A5A);
        rig.Driver.WriteCommon(offset, width, 0x5A5A_5A5A);
        Assert.Equal(before, rig.Driver.ReadCommon(offset, width));
        Assert.Equal(1, rig.Logged("CommonReadOnly"));
    }

    [Fact]
    public void DriverFeatures_AreStagedByWordAndReadBack()
    {
        using var rig = Probed();
        rig.Driver.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        rig.Driver.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.EventIdx);
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.EventIdx, rig.Device.StagedDriverFeatures);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4, 1);
        Assert.Equal(1u, rig.Driver.ReadCommon(VirtioPciCommonConfig.DriverFeature, 4));
        rig.Driver.WriteCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4, 0);
        Assert.Equal((uint)VirtioFeatures.EventIdx, rig.Driver.ReadCommon(VirtioPciCommonConfig.DriverFeature, 4));
        rig.Driver.WriteCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4, 7);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.DriverFeature, 4, 0xFFFF_FFFF); // no such word: ignored
        Assert.Equal(VirtioFeatures.Version1 | VirtioFeatures.EventIdx, rig.Device.StagedDriverFeatures);
    }

    [Fact]
    public void TransportFeaturesThisTransportLacks_AreNotOffered_AndAskingForThemFailsFeaturesOk()
    {
        using var rig = Probed(features: VirtioFeatures.CoreDefaults | VirtioFeatures.RingReset | (1UL << 37));
        Assert.Equal(VirtioFeatures.CoreDefaults, rig.Driver.ReadDeviceFeatures());
        rig.Driver.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        rig.Driver.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.RingReset);
        rig.Driver.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk;
        Assert.Equal(DeviceStatus.None, rig.Driver.Status & DeviceStatus.FeaturesOk);
    }

    [Fact]
    public void QueueAddresses_AreWrittenAsTwo32BitHalves()
    {
        using var rig = Probed();
        PciDriver d = rig.Driver;
        d.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 1);
        d.WriteCommon(VirtioPciCommonConfig.QueueDesc + 4, 4, 0x1);
        d.WriteCommon(VirtioPciCommonConfig.QueueDesc, 4, 0x2000);
        d.WriteCommon(VirtioPciCommonConfig.QueueDriver, 4, 0x3000);
        d.WriteCommon(VirtioPciCommonConfig.QueueDriver + 4, 4, 0x2);
        d.WriteCommon(VirtioPciCommonConfig.QueueDevice, 4, 0x4000);
        d.WriteCommon(VirtioPciCommonConfig.QueueDevice + 4, 4, 0x3);
        Assert.Equal(0x1_0000_2000ul, rig.Device.Queues[1].DescriptorTable.Value);
        Assert.Equal(0x2_0000_3000ul, rig.Device.Queues[1].AvailRing.Value);
        Assert.Equal(0x3_0000_4000ul, rig.Device.Queues[1].UsedRing.Value);
        Assert.Equal(0x2000u, d.ReadCommon(VirtioPciCommonConfig.QueueDesc, 4));
        Assert.Equal(0x1u, d.ReadCommon(VirtioPciCommonConfig.QueueDesc + 4, 4));
        Assert.Equal(0x3u, d.ReadCommon(VirtioPciCommonConfig.QueueDevice + 4, 4));
        Assert.Equal(0ul, rig.Device.Queues[0].DescriptorTable.Value);
    }

    [Theory]
    [InlineData(VirtioPciCommonConfig.QueueDesc, 8)] // a 64-bit field is two 32-bit accesses, not one
    [InlineData(VirtioPciCommonConfig.QueueSelect, 1)]
    [InlineData(VirtioPciCommonConfig.QueueSelect, 4)]
    [InlineData(VirtioPciCommonConfig.QueueSelect + 1, 1)] // inside a field
    [InlineData(VirtioPciCommonConfig.DeviceStatus, 2)]
    [InlineData(VirtioPciCommonConfig.DeviceFeatureSelect, 2)]
    [InlineData(VirtioPciCommonConfig.DeviceFeatureSelect + 2, 2)]
    [InlineData(VirtioPciCommonConfig.QueueDesc + 2, 4)]
    [InlineData(VirtioPciCommonConfig.ConfigMsixVector, 4)]
    public void AccessOfTheWrongWidthOrInsideAField_IsIgnoredAndLoggedOnce(int offset, int width)
    {
        using var rig = Probed();
        var ones = new byte[width];
        ones.AsSpan().Fill(0xFF);
        var read = new byte[width];
        read.AsSpan().Fill(0xAA);
        Assert.True(rig.Function.TryWriteMemory(rig.Driver.CommonConfigAddress + (ulong)offset, ones));
        Assert.True(rig.Function.TryWriteMemory(rig.Driver.CommonConfigAddress + (ulong)offset, ones));
        Assert.True(rig.Function.TryReadMemory(rig.Driver.CommonConfigAddress + (ulong)offset, read));
        Assert.All(read, b => Assert.Equal(0, b));
        Assert.Equal(1, rig.Logged("CommonWrongWidth"));

        // Nothing changed: no selector moved, no status written, no address set.
        Assert.Equal(0u, rig.Driver.ReadCommon(VirtioPciCommonConfig.QueueSelect, 2));
        Assert.Equal(0u, rig.Driver.ReadCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4));
        Assert.Equal(DeviceStatus.None, rig.Device.Status);
        Assert.Equal(0ul, rig.Device.Queues[0].DescriptorTable.Value);
        Assert.Equal(0xFFFFu, rig.Driver.ReadCommon(VirtioPciCommonConfig.ConfigMsixVector, 2));
    }

    [Fact]
    public void PastTheFields_QueueNotifyDataAndQueueReset_AreNotThere()
    {
        using var rig = Probed();
        rig.Driver.WriteCommon(0x38, 2, 0xFFFF); // queue_notify_data
        rig.Driver.WriteCommon(0x3A, 2, 1); // queue_reset
        Assert.Equal(0u, rig.Driver.ReadCommon(0x3A, 2));
        Assert.Equal(0u, rig.Driver.ReadCommon(0xFFC, 4));
        Assert.Equal(1, rig.Logged("CommonUnknown"));
    }

    [Fact]
    public void QueueFields_AreIgnoredWhileTheQueueIsEnabled()
    {
        using var rig = Probed(queues: 1);
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        ulong desc = rig.Device.Queues[0].DescriptorTable.Value;
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 0);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueDesc, 4, 0xDEAD_0000);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSize, 2, 8);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueDevice + 4, 4, 0xFF);
        Assert.Equal(desc, rig.Device.Queues[0].DescriptorTable.Value);
        Assert.Equal(rig.Guest.QueueSize, rig.Device.Queues[0].Size);
        Assert.Equal(1, rig.Logged("QueueEnabled"));
        Assert.True(rig.Device.Queues[0].IsReady);
    }

    [Fact]
    public void QueueEnable_Zero_IsIgnored_TheQueueStopsOnlyWithAReset()
    {
        using var rig = Probed(queues: 1);
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueEnable, 2, 0);
        Assert.True(rig.Device.Queues[0].IsReady);
        Assert.Equal(1u, rig.Driver.ReadCommon(VirtioPciCommonConfig.QueueEnable, 2));
        Assert.Equal(1, rig.Logged("QueueDisable"));
    }

    [Fact]
    public void QueueFieldsOfAQueueThatDoesNotExist_AreIgnored()
    {
        using var rig = Probed(queues: 1);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 1);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSize, 2, 8);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueEnable, 2, 1);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueMsixVector, 2, 0);
        Assert.Equal(0u, rig.Driver.ReadCommon(VirtioPciCommonConfig.QueueEnable, 2));
        Assert.Equal(1, rig.Logged("NoSuchQueue"));
    }

    [Fact]
    public void MsixVectors_BeyondTheTableReadBackNoVector()
    {
        using var rig = Probed(queues: 2); // 3 vectors
        PciDriver d = rig.Driver;
        d.WriteCommon(VirtioPciCommonConfig.ConfigMsixVector, 2, 2);
        Assert.Equal(2u, d.ReadCommon(VirtioPciCommonConfig.ConfigMsixVector, 2));
        d.WriteCommon(VirtioPciCommonConfig.ConfigMsixVector, 2, 3);
        Assert.Equal(0xFFFFu, d.ReadCommon(VirtioPciCommonConfig.ConfigMsixVector, 2));
        d.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 1);
        d.WriteCommon(VirtioPciCommonConfig.QueueMsixVector, 2, 0);
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2));
        d.WriteCommon(VirtioPciCommonConfig.QueueMsixVector, 2, 0x8000);
        Assert.Equal(0xFFFFu, d.ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2));
        d.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 0);
        Assert.Equal(0xFFFFu, d.ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2)); // NO_VECTOR at reset
    }

    [Fact]
    public void WithoutMsiX_EveryVectorReadsBackNoVector()
    {
        using var rig = new PciRig(msiX: false);
        rig.Driver.Probe();
        rig.Driver.WriteCommon(VirtioPciCommonConfig.ConfigMsixVector, 2, 0);
        Assert.Equal(0xFFFFu, rig.Driver.ReadCommon(VirtioPciCommonConfig.ConfigMsixVector, 2));
    }

    [Fact]
    public void Reset_ReturnsTheTransportStateToItsInitialValues()
    {
        using var rig = Probed(queues: 2);
        rig.Driver.EnableMsiX(v => new MsiMessage(0xFEE0_0000, v));
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        rig.Device.ChangeConfig(0, 1); // the config vector fires; and with INTx later the ISR would hold it
        PciDriver d = rig.Driver;
        d.WriteCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4, 1);
        d.WriteCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4, 1);
        d.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 1);
        Assert.NotEqual(0, (int)rig.Function.InterruptStatus);

        d.Status = DeviceStatus.None;
        Assert.Equal(DeviceStatus.None, d.Status);
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.DeviceFeatureSelect, 4));
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.DriverFeatureSelect, 4));
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.QueueSelect, 2));
        Assert.Equal(0xFFFFu, d.ReadCommon(VirtioPciCommonConfig.ConfigMsixVector, 2));
        Assert.Equal(0xFFFFu, d.ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2));
        Assert.Equal(0u, d.ReadCommon(VirtioPciCommonConfig.QueueEnable, 2));
        Assert.Equal(0, (int)rig.Function.InterruptStatus);
        Assert.False(rig.Device.Queues[0].IsReady);
        Assert.True(rig.Function.IsMsiXEnabled); // MSI-X is PCI state: a virtio reset leaves it
    }
}
