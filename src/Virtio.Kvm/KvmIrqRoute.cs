using System;
using System.Collections.Generic;

namespace Virtio.Kvm;

/// <summary>
/// One entry of the VM's GSI routing table (struct kvm_irq_routing_entry): what an irqfd or
/// KVM_IRQ_LINE on <see cref="Gsi"/> raises. Build entries with <see cref="ToIrqChip"/> or
/// <see cref="ToMsi"/> and install the whole table with <see cref="KvmVm.SetGsiRouting"/>.
/// </summary>
public readonly record struct KvmIrqRoute
{
    /// <summary>The highest IOAPIC pin (the in-kernel IOAPIC has 24).</summary>
    public const uint MaxIoApicPin = 23;

    /// <summary>The highest pin of one 8259 PIC.</summary>
    public const uint MaxPicPin = 7;

    private KvmIrqRoute(uint gsi, KvmIrqRouteKind kind, KvmIrqChip chip, uint pin, ulong msiAddress, uint msiData)
    {
        Gsi = gsi;
        Kind = kind;
        Chip = chip;
        Pin = pin;
        MsiAddress = msiAddress;
        MsiData = msiData;
    }

    /// <summary>The global system interrupt number irqfds and KVM_IRQ_LINE use.</summary>
    public uint Gsi { get; }

    /// <summary>Whether the entry targets an irqchip pin or an MSI.</summary>
    public KvmIrqRouteKind Kind { get; }

    /// <summary>The controller, for <see cref="KvmIrqRouteKind.IrqChip"/> entries.</summary>
    public KvmIrqChip Chip { get; }

    /// <summary>The controller pin, for <see cref="KvmIrqRouteKind.IrqChip"/> entries.</summary>
    public uint Pin { get; }

    /// <summary>The MSI address, for <see cref="KvmIrqRouteKind.Msi"/> entries.</summary>
    public ulong MsiAddress { get; }

    /// <summary>The MSI data, for <see cref="KvmIrqRouteKind.Msi"/> entries.</summary>
    public uint MsiData { get; }

    /// <summary>Routes <paramref name="gsi"/> to pin <paramref name="pin"/> of <paramref name="chip"/>.</summary>
    /// <param name="gsi">The GSI.</param>
    /// <param name="chip">The controller.</param>
    /// <param name="pin">The pin: 0-23 on the IOAPIC, 0-7 on a PIC.</param>
    /// <returns>The entry.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An unknown controller or a pin it does not have.</exception>
    public static KvmIrqRoute ToIrqChip(uint gsi, KvmIrqChip chip, uint pin)
    {
        uint maxPin = chip switch
        {
            KvmIrqChip.IoApic => MaxIoApicPin,
            KvmIrqChip.PicMaster or KvmIrqChip.PicSlave => MaxPicPin,
            _ => throw new ArgumentOutOfRangeException(nameof(chip), chip, "not an x86 in-kernel irqchip"),
        };
        ArgumentOutOfRangeException.ThrowIfGreaterThan(pin, maxPin);
        return new KvmIrqRoute(gsi, KvmIrqRouteKind.IrqChip, chip, pin, 0, 0);
    }

    /// <summary>Routes <paramref name="gsi"/> to a message-signalled interrupt.</summary>
    /// <param name="gsi">The GSI.</param>
    /// <param name="address">The MSI address (on x86 0xFEExxxxx, the destination APIC in bits 12-19).</param>
    /// <param name="data">The MSI data (on x86 the vector in bits 0-7 and the delivery mode).</param>
    /// <returns>The entry.</returns>
    public static KvmIrqRoute ToMsi(uint gsi, ulong address, uint data) =>
        new(gsi, KvmIrqRouteKind.Msi, default, 0, address, data);

    /// <summary>
    /// The table KVM_CREATE_IRQCHIP installs on x86: GSI 0-15 to the PIC pin of the same number and
    /// IOAPIC pin of the same number, GSI 16-23 to IOAPIC pins 16-23. <see cref="KvmVm.SetGsiRouting"/>
    /// replaces the whole table, so start from these when adding routes of one's own.
    /// </summary>
    /// <returns>40 entries (two for each of GSI 0-15, one for each of GSI 16-23).</returns>
    public static IReadOnlyList<KvmIrqRoute> StandardIrqChipRoutes()
    {
        var routes = new List<KvmIrqRoute>(40);
        for (uint gsi = 0; gsi <= MaxIoApicPin; gsi++)
        {
            if (gsi < 16)
            {
                routes.Add(ToIrqChip(gsi, gsi < 8 ? KvmIrqChip.PicMaster : KvmIrqChip.PicSlave, gsi % 8));
            }

            routes.Add(ToIrqChip(gsi, KvmIrqChip.IoApic, gsi));
        }

        return routes;
    }
}
