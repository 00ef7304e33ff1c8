using Virtio.Core.Transport.Pci;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

public sealed class X86MsiTests
{
    [Theory]
    [InlineData(0xFEE0_0000UL, 0x30u)]
    [InlineData(0xFEEF_FFFFUL, 0x30u)]
    [InlineData(0xFEE0_100CUL, 0x0000_8130u)] // destination 1, logical mode with redirection hint; lowest priority, level
    [InlineData(0xFEE0_0000UL, 0x0000_0430u)] // NMI
    [InlineData(0xFEE0_0000UL, 0x0000_0730u)] // ExtINT
    public void Refusal_IsNullForAnInterrupt(ulong address, uint data) =>
        Assert.Null(X86Msi.Refusal(new MsiMessage(address, data)));

    [Theory]
    [InlineData(0xFEDF_FFFFUL)]
    [InlineData(0xFEF0_0000UL)]
    [InlineData(0x1_FEE0_0000UL)] // upper address dword set
    [InlineData(0x8000_0000_FEE0_0000UL)]
    [InlineData(0UL)]
    [InlineData(0x1000UL)] // guest RAM: a DMA write, not an interrupt
    public void Refusal_NamesTheWindow_ForAnAddressOutsideIt(ulong address) =>
        Assert.Contains("interrupt window", X86Msi.Refusal(new MsiMessage(address, 0x30)), System.StringComparison.Ordinal);

    [Theory]
    [InlineData(0x0330u)]
    [InlineData(0x0630u)]
    public void Refusal_NamesTheReservedDeliveryModes(uint data) =>
        Assert.Contains("reserved", X86Msi.Refusal(new MsiMessage(0xFEE0_0000, data)), System.StringComparison.Ordinal);
}
