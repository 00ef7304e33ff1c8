using System;
using System.Buffers.Binary;
using System.Numerics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;

namespace Virtio.Core.Transport.Pci;

/// <summary>
/// One PCI function (a type-0 configuration header with its BARs) in front of a <see cref="VirtioDevice"/>:
/// the modern virtio-pci transport of virtio 1.2 §4.1, with MSI-X and the INTx fallback. The embedder
/// forwards the guest's configuration-space accesses (<see cref="ReadConfigSpace"/>,
/// <see cref="WriteConfigSpace"/>) and its memory accesses (<see cref="TryReadMemory"/>,
/// <see cref="TryWriteMemory"/>), and supplies the INTx line and the MSI-X delivery.
/// </summary>
/// <remarks>
/// <para>BAR layout (docs/pci.md). BAR 0 (<see cref="CapabilityBar"/>), a 32-bit non-prefetchable memory
/// BAR, holds the virtio structures, each at the start of its own 4 KiB page: common configuration at
/// 0x0000, ISR at 0x1000, device configuration at 0x2000, the doorbells from 0x3000. BAR 1
/// (<see cref="MsiXBar"/>), a 32-bit memory BAR, holds the MSI-X table at 0 and the PBA on the next 4 KiB
/// page after it. The MSI-X structures sit in a BAR of their own, as QEMU lays them out, so an embedder
/// can trap or map that BAR without touching the doorbells, and the two 32-bit BARs fit a 32-bit MMIO
/// hole below 4 GiB, which is what firmware-less VMMs usually have.</para>
/// <para>Threads: configuration and memory accesses come from one vCPU thread at a time. The device raises
/// interrupts from its I/O threads concurrently with them: the ISR, the MSI-X pending bits and masks are
/// kept under one lock, so a raise and a vCPU's read-to-clear or mask never lose an interrupt.</para>
/// <para>The guest is hostile: accesses of the wrong width or alignment, writes of read-only fields,
/// queue configuration while the queue is enabled, and the like are ignored and logged once per kind
/// (event 1501, counter virtio.pci.ignored_accesses); nothing a guest writes makes a call throw.</para>
/// </remarks>
public sealed class VirtioPciFunction
{
    /// <summary>The PCI Vendor ID of every virtio device (virtio 1.2 §4.1.2).</summary>
    public const ushort VendorId = 0x1AF4;

    /// <summary>A modern virtio device's PCI Device ID is this plus its virtio device ID (virtio 1.2 §4.1.2).</summary>
    public const ushort DeviceIdBase = 0x1040;

    /// <summary>The Revision ID of a modern (non-transitional) device: 1.</summary>
    public const byte RevisionId = 1;

    /// <summary>VIRTIO_MSI_NO_VECTOR: no MSI-X vector (virtio 1.2 §4.1.5.1.2).</summary>
    public const ushort NoVector = 0xFFFF;

    /// <summary>The BAR holding the common, ISR, device and notify structures.</summary>
    public const int CapabilityBar = 0;

    /// <summary>The BAR holding the MSI-X table and PBA (absent without MSI-X).</summary>
    public const int MsiXBar = 1;

    /// <summary>The configuration space's size: offsets from 0 to 4095 are accepted; from 256 on they read zero.</summary>
    public const int ConfigSpaceSize = 4096;

    private readonly VirtioPciLayout _layout;
    private readonly PciConfigHeader _header = new();
    private readonly VirtioPciInterrupts _interrupts;
    private readonly CommonConfigRegisters _common;
    private readonly PciAccessLog _log;
    private (ulong Bar0, ulong Bar1) _decoded = (NotDecoded, NotDecoded);

    /// <summary>Marks a BAR that does not decode in <see cref="_decoded"/> (no BAR starts at an odd address).</summary>
    private const ulong NotDecoded = 1;

    /// <summary>Puts a PCI function in front of <paramref name="device"/>.</summary>
    /// <param name="device">The device; its <see cref="VirtioDevice.GuestNotifier"/> is set to this function's interrupt logic.</param>
    /// <param name="intxLine">
    /// The INTx (INTA#) line, used while MSI-X is disabled. It is a level: <see cref="IGuestNotifier.Notify"/>
    /// asserts it (an irqfd with a resample fd on KVM); the guest's ISR read deasserts it, and the embedder's
    /// resample handler re-asserts it while <see cref="IsIntxAsserted"/> is true.
    /// </param>
    /// <param name="msiX">Where MSI-X vectors go; null gives a function without the MSI-X capability (INTx only).</param>
    /// <param name="options">The embedder's choices; defaults when null.</param>
    /// <param name="logger">Where ignored accesses are logged; none by default.</param>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public VirtioPciFunction(VirtioDevice device, IGuestNotifier intxLine, IMsiXDelivery? msiX, VirtioPciFunctionOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(intxLine);
        options ??= new VirtioPciFunctionOptions();
        uint multiplier = options.NotifyOffMultiplier;
        if (multiplier != 0 && (multiplier == 1 || multiplier > 4096 || !BitOperations.IsPow2(multiplier)))
        {
            throw new ArgumentException("notify_off_multiplier is 0 or a power of two from 2 to 4096.", nameof(options));
        }

        int vectors = msiX is null ? 0 : options.MsiXVectorCount ?? Math.Min(device.Queues.Count + 1, MaxMsiXVectors);
        if (msiX is not null && vectors is < 1 or > MaxMsiXVectors)
        {
            throw new ArgumentException($"An MSI-X table has from 1 to {MaxMsiXVectors} entries.", nameof(options));
        }

        if (options.DeviceConfigLength is < 1 or > VirtioPciLayout.Page)
        {
            throw new ArgumentException("The device configuration is from 1 to 4096 bytes long.", nameof(options));
        }

        Device = device;
        NotifyOffMultiplier = multiplier;
        MsiXVectorCount = vectors;
        PciDeviceId = (ushort)(DeviceIdBase + device.DeviceId);
        ClassCode = ClassCodeFor(device.DeviceId);
        _log = new PciAccessLog(device, logger ?? NullLogger.Instance);
        _layout = new VirtioPciLayout(device.Queues.Count, multiplier, options.DeviceConfigLength, vectors);
        _interrupts = new VirtioPciInterrupts(intxLine, msiX, vectors, device.Queues.Count);
        _common = new CommonConfigRegisters(device, _interrupts, _log);
        BuildHeader(options);
        device.GuestNotifier = _interrupts;
    }

    /// <summary>
    /// Raised on the thread that wrote the configuration space when the address range a BAR decodes
    /// changed: the guest moved it, or turned Memory Space Enable on or off. The embedder re-reads
    /// <see cref="TryGetBarAddress"/> and <see cref="TryGetNotifyAddress"/> and moves what it registered
    /// (ioeventfds, its bus's dispatch). Not raised while decoding is off.
    /// </summary>
    public event Action<VirtioPciFunction>? BarsChanged;

    /// <summary>The device behind the function.</summary>
    public VirtioDevice Device { get; }

    /// <summary>The PCI Device ID: <see cref="DeviceIdBase"/> plus the virtio device ID.</summary>
    public ushort PciDeviceId { get; }

    /// <summary>The 24-bit class code (base class, subclass, programming interface) for the device type.</summary>
    public uint ClassCode { get; }

    /// <summary>The notify capability's <c>notify_off_multiplier</c>.</summary>
    public uint NotifyOffMultiplier { get; }

    /// <summary>The number of MSI-X table entries; 0 for a function without MSI-X.</summary>
    public int MsiXVectorCount { get; }

    /// <summary>
    /// The Interrupt Line register (0x3C): the embedder sets the INTx routing it chose (the GSI/IRQ); the
    /// guest's firmware may overwrite it. Any thread.
    /// </summary>
    public byte InterruptLine
    {
        get => _header.InterruptLine;
        set => _header.InterruptLine = value;
    }

    /// <summary>The ISR status byte (bit 0 queue interrupt, bit 1 configuration change) without clearing it. Any thread.</summary>
    public byte InterruptStatus => _interrupts.Isr;

    /// <summary>
    /// Whether INTx is asserted: MSI-X disabled, Interrupt Disable clear and an ISR bit set. The embedder's
    /// resample handler (after the guest's EOI) re-asserts the line while this is true. Any thread.
    /// </summary>
    public bool IsIntxAsserted => _interrupts.IsIntxAsserted;

    /// <summary>Whether the guest set MSI-X Enable (interrupts go to MSI-X vectors, not INTx). Any thread.</summary>
    public bool IsMsiXEnabled => _interrupts.IsMsiXEnabled;

    /// <summary>Whether the command register's Memory Space Enable is set (the BARs decode).</summary>
    public bool IsMemorySpaceEnabled => _header.MemorySpaceEnabled;

    /// <summary>Whether the command register's Bus Master Enable is set (the device may use guest memory and send MSI-X).</summary>
    public bool IsBusMasterEnabled => _header.BusMasterEnabled;

    /// <summary>
    /// Called for a doorbell write instead of processing the queue on the vCPU thread; return true when
    /// the notification was taken (signalled to an I/O thread). When null or returning false, the device
    /// processes the queue synchronously. Same contract as <see cref="VirtioMmioTransport.QueueNotifyHandler"/>.
    /// </summary>
    public Func<ushort, bool>? QueueNotifyHandler { get; set; }

    /// <summary>Handles a guest read of configuration space.</summary>
    /// <param name="offset">The offset in the function's configuration space (0 to 4095).</param>
    /// <param name="data">Receives the little-endian value (1, 2 or 4 bytes, naturally aligned); zero for ignored accesses.</param>
    public void ReadConfigSpace(int offset, Span<byte> data)
    {
        data.Clear();
        if (!IsConfigAccess(offset, data.Length) || offset >= PciConfigHeader.Size)
        {
            return; // from 256 on: no extended capabilities, zero
        }

        if (Overlaps(offset, data.Length, VirtioPciLayout.PciCfgCap + VirtioPciLayout.PciCfgData, 4))
        {
            WindowAccess(write: false);
        }

        _header.Bytes.Slice(offset, data.Length).CopyTo(data);
        if (Overlaps(offset, data.Length, PciConfigHeader.StatusOffset, 1) && _interrupts.IsIntxPending)
        {
            // PCI 3.0 §6.2.3 Interrupt Status, and virtio 1.2 §4.1.4.5.1: the OR of the ISR bits under INTx.
            data[PciConfigHeader.StatusOffset - offset] |= (byte)PciConfigHeader.StatusInterrupt;
        }
    }

    /// <summary>Handles a guest write of configuration space.</summary>
    /// <param name="offset">The offset in the function's configuration space (0 to 4095).</param>
    /// <param name="data">The little-endian value (1, 2 or 4 bytes, naturally aligned).</param>
    public void WriteConfigSpace(int offset, ReadOnlySpan<byte> data)
    {
        if (!IsConfigAccess(offset, data.Length) || offset >= PciConfigHeader.Size)
        {
            return;
        }

        _header.Write(offset, data); // read-only bits keep their value; BAR size bits stay zero
        if (Overlaps(offset, data.Length, PciConfigHeader.CommandOffset, 2)
            || (_layout.VectorCount > 0 && Overlaps(offset, data.Length, VirtioPciLayout.MsiXCap + VirtioPciLayout.MsiXControl, 2)))
        {
            UpdateInterruptControls();
        }

        if (Overlaps(offset, data.Length, PciConfigHeader.CommandOffset, 2) || Overlaps(offset, data.Length, PciConfigHeader.Bar0Offset, 8))
        {
            UpdateDecoding();
        }

        if (Overlaps(offset, data.Length, VirtioPciLayout.PciCfgCap + VirtioPciLayout.PciCfgData, 4))
        {
            WindowAccess(write: true);
        }
    }

    /// <summary>Handles a guest memory read at guest-physical <paramref name="address"/> if one of this function's decoding BARs holds it.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="data">Receives the little-endian value; zero for ignored accesses.</param>
    /// <returns>False when no enabled BAR of this function holds the address (the access is someone else's).</returns>
    public bool TryReadMemory(ulong address, Span<byte> data)
    {
        if (!TryDecode(address, out int bar, out ulong offset))
        {
            return false;
        }

        data.Clear();
        ReadBar(bar, offset, data);
        return true;
    }

    /// <summary>Handles a guest memory write at guest-physical <paramref name="address"/> if one of this function's decoding BARs holds it.</summary>
    /// <param name="address">The guest-physical address.</param>
    /// <param name="data">The little-endian value.</param>
    /// <returns>False when no enabled BAR of this function holds the address.</returns>
    public bool TryWriteMemory(ulong address, ReadOnlySpan<byte> data)
    {
        if (!TryDecode(address, out int bar, out ulong offset))
        {
            return false;
        }

        WriteBar(bar, offset, data);
        return true;
    }

    /// <summary>The size of BAR <paramref name="index"/> in bytes; 0 for a BAR the function does not implement.</summary>
    /// <param name="index">0 to 5.</param>
    /// <returns>The size, a power of two.</returns>
    public ulong GetBarSize(int index) => index switch
    {
        CapabilityBar => _layout.Bar0Size,
        MsiXBar => _layout.Bar1Size,
        _ => 0,
    };

    /// <summary>Where BAR <paramref name="index"/> decodes now.</summary>
    /// <param name="index">0 to 5.</param>
    /// <param name="address">The BAR's base address, when it decodes.</param>
    /// <returns>False when the BAR is not implemented or Memory Space Enable is clear.</returns>
    public bool TryGetBarAddress(int index, out ulong address)
    {
        address = 0;
        if (GetBarSize(index) == 0 || !_header.MemorySpaceEnabled)
        {
            return false;
        }

        address = BarAddress(index);
        return true;
    }

    /// <summary>
    /// The guest-physical doorbell address of queue <paramref name="queueIndex"/>: the notify region's
    /// address plus queue_notify_off × <see cref="NotifyOffMultiplier"/>. The guest writes the queue index
    /// there as 16 bits (4 bytes are accepted too). With multiplier 0 every queue has the same address.
    /// </summary>
    /// <param name="queueIndex">The queue.</param>
    /// <param name="address">The doorbell address, when BAR 0 decodes.</param>
    /// <returns>False when the queue does not exist or BAR 0 does not decode.</returns>
    public bool TryGetNotifyAddress(ushort queueIndex, out ulong address)
    {
        address = 0;
        if (queueIndex >= Device.Queues.Count || !TryGetBarAddress(CapabilityBar, out ulong bar))
        {
            return false;
        }

        // queue_notify_off is the queue's index (VirtioPciCommonConfig.QueueNotifyOff).
        address = bar + VirtioPciLayout.NotifyOffset + ((ulong)queueIndex * NotifyOffMultiplier);
        return true;
    }

    /// <summary>
    /// A PCI reset of the function (RST#, a bus or function-level reset): the configuration header
    /// returns to its power-on state (command 0, BARs 0, MSI-X disabled, every vector masked) and the
    /// device resets. Called by the embedder, on the thread that forwards configuration accesses.
    /// </summary>
    public void ResetFunction()
    {
        Device.Reset();
        _common.Reset();
        _interrupts.ResetVirtio();
        _header.Reset();
        _interrupts.ResetFunction();
        UpdateDecoding();
    }

    /// <summary>The MSI-X table's largest size (PCI 3.0 §6.8.2.3: Table Size is 11 bits).</summary>
    private const int MaxMsiXVectors = 2048;

    /// <summary>The 24-bit class code Linux and QEMU expect for a virtio device type (0xFF0000, "other", for the rest).</summary>
    internal static uint ClassCodeFor(ushort deviceId) => deviceId switch
    {
        1 => 0x020000, // network: Ethernet controller
        2 or 8 => 0x010000, // block, SCSI: SCSI storage controller
        3 or 19 => 0x078000, // console, vsock: other communication controller
        16 => 0x038000, // GPU: other display controller
        18 => 0x098000, // input: other input controller
        26 => 0x018000, // file system: other mass storage controller
        _ => 0xFF0000,
    };

    private static bool Overlaps(int offset, int length, int start, int size) => offset < start + size && start < offset + length;

    private static bool IsNatural(ulong offset, int length, int widest) =>
        length is 1 or 2 or 4 or 8 && length <= widest && offset % (ulong)length == 0;

    private void BuildHeader(VirtioPciFunctionOptions options)
    {
        PciConfigHeader h = _header;
        h.Set16(PciConfigHeader.VendorIdOffset, VendorId);
        h.Set16(PciConfigHeader.DeviceIdOffset, PciDeviceId);
        h.Set16(PciConfigHeader.StatusOffset, PciConfigHeader.StatusCapabilitiesList);
        h.Set8(PciConfigHeader.RevisionOffset, RevisionId);
        h.Set8(PciConfigHeader.ClassCodeOffset, (byte)ClassCode);
        h.Set8(PciConfigHeader.ClassCodeOffset + 1, (byte)(ClassCode >> 8));
        h.Set8(PciConfigHeader.ClassCodeOffset + 2, (byte)(ClassCode >> 16));
        h.Set8(PciConfigHeader.HeaderTypeOffset, 0); // type 0, single function
        h.Set16(PciConfigHeader.SubsystemVendorIdOffset, options.SubsystemVendorId);
        h.Set16(PciConfigHeader.SubsystemIdOffset, options.SubsystemId);
        h.Set8(PciConfigHeader.CapabilitiesPointerOffset, VirtioPciLayout.CommonCap);
        h.Set8(PciConfigHeader.InterruptPinOffset, 1); // INTA#

        // No I/O BAR, so I/O Space Enable stays 0; Memory Space, Bus Master and Interrupt Disable are the guest's.
        h.SetWritable16(PciConfigHeader.CommandOffset, PciConfigHeader.CommandMemorySpace | PciConfigHeader.CommandBusMaster | PciConfigHeader.CommandInterruptDisable);
        h.SetWritable(PciConfigHeader.CacheLineSizeOffset, [0xFF]);
        h.SetWritable(PciConfigHeader.InterruptLineOffset, [0xFF]);

        // 32-bit non-prefetchable memory BARs: type bits 0, the size's bits read back as 0 (sizing).
        h.SetWritable32(PciConfigHeader.Bar0Offset, (uint)~(_layout.Bar0Size - 1));
        if (_layout.Bar1Size != 0)
        {
            h.SetWritable32(PciConfigHeader.Bar0Offset + 4, (uint)~(_layout.Bar1Size - 1));
        }

        byte last = _layout.VectorCount > 0 ? (byte)VirtioPciLayout.MsiXCap : (byte)0;
        AddVirtioCap(VirtioPciLayout.CommonCap, VirtioPciLayout.NotifyCap, VirtioPciCapabilityType.CommonConfig, VirtioPciLayout.VirtioCapLength, VirtioPciLayout.CommonOffset, VirtioPciCommonConfig.Length);
        AddVirtioCap(VirtioPciLayout.NotifyCap, VirtioPciLayout.IsrCap, VirtioPciCapabilityType.NotifyConfig, VirtioPciLayout.VirtioCapLength + 4, VirtioPciLayout.NotifyOffset, _layout.NotifyLength);
        h.Set32(VirtioPciLayout.NotifyCap + VirtioPciLayout.NotifyMultiplier, NotifyOffMultiplier);
        AddVirtioCap(VirtioPciLayout.IsrCap, VirtioPciLayout.DeviceCap, VirtioPciCapabilityType.IsrConfig, VirtioPciLayout.VirtioCapLength, VirtioPciLayout.IsrOffset, 1);
        AddVirtioCap(VirtioPciLayout.DeviceCap, VirtioPciLayout.PciCfgCap, VirtioPciCapabilityType.DeviceConfig, VirtioPciLayout.VirtioCapLength, VirtioPciLayout.DeviceOffset, (uint)_layout.DeviceConfigLength);

        // §4.1.4.9: bar, offset and length of the PCI cfg capability are the driver's, and so is the data.
        AddVirtioCap(VirtioPciLayout.PciCfgCap, last, VirtioPciCapabilityType.PciConfigAccess, VirtioPciLayout.VirtioCapLength + 4, 0, 0);
        h.Set8(VirtioPciLayout.PciCfgCap + VirtioPciLayout.CapBar, 0);
        h.SetWritable(VirtioPciLayout.PciCfgCap + VirtioPciLayout.CapBar, [0xFF]);
        h.SetWritable32(VirtioPciLayout.PciCfgCap + VirtioPciLayout.CapOffset, uint.MaxValue);
        h.SetWritable32(VirtioPciLayout.PciCfgCap + VirtioPciLayout.CapLength, uint.MaxValue);
        h.SetWritable32(VirtioPciLayout.PciCfgCap + VirtioPciLayout.PciCfgData, uint.MaxValue);

        if (_layout.VectorCount > 0)
        {
            int cap = VirtioPciLayout.MsiXCap;
            h.Set8(cap, VirtioPciLayout.MsiXCapId);
            h.Set8(cap + 1, 0);
            h.Set16(cap + VirtioPciLayout.MsiXControl, (ushort)(_layout.VectorCount - 1)); // Table Size is N - 1
            h.Set32(cap + VirtioPciLayout.MsiXTable, MsiXBar); // offset 0, BIR 1
            h.Set32(cap + VirtioPciLayout.MsiXPba, (uint)_layout.PbaOffset | MsiXBar);
            h.SetWritable16(cap + VirtioPciLayout.MsiXControl, VirtioPciLayout.MsiXEnable | VirtioPciLayout.MsiXFunctionMask);
        }

        h.Seal();
    }

    private void AddVirtioCap(int at, int next, VirtioPciCapabilityType type, int capLength, uint offset, uint length)
    {
        _header.Set8(at + VirtioPciLayout.CapVendor, VirtioPciLayout.VendorSpecificCapId);
        _header.Set8(at + VirtioPciLayout.CapNext, (byte)next);
        _header.Set8(at + VirtioPciLayout.CapLen, (byte)capLength);
        _header.Set8(at + VirtioPciLayout.CapCfgType, (byte)type);
        _header.Set8(at + VirtioPciLayout.CapBar, CapabilityBar);
        _header.Set32(at + VirtioPciLayout.CapOffset, offset);
        _header.Set32(at + VirtioPciLayout.CapLength, length);
    }

    private bool IsConfigAccess(int offset, int length)
    {
        if (offset is < 0 or >= ConfigSpaceSize)
        {
            _log.Ignore(PciIgnoredKind.ConfigOutOfRange, "config", (ulong)(uint)offset, length);
            return false;
        }

        if (!IsNatural((ulong)offset, length, 4))
        {
            _log.Ignore(PciIgnoredKind.ConfigWrongWidth, "config", (ulong)offset, length);
            return false;
        }

        return true;
    }

    private ulong BarAddress(int index) => _header.ReadUInt32(PciConfigHeader.Bar0Offset + (4 * index)) & ~0xFUL;

    private bool TryDecode(ulong address, out int bar, out ulong offset)
    {
        if (_header.MemorySpaceEnabled)
        {
            for (bar = 0; bar <= MsiXBar; bar++)
            {
                ulong size = GetBarSize(bar);
                offset = address - BarAddress(bar);
                if (size != 0 && offset < size)
                {
                    return true;
                }
            }
        }

        bar = -1;
        offset = 0;
        return false;
    }

    private void UpdateInterruptControls()
    {
        ushort control = _layout.VectorCount > 0 ? _header.ReadUInt16(VirtioPciLayout.MsiXCap + VirtioPciLayout.MsiXControl) : (ushort)0;
        bool enabled = (control & VirtioPciLayout.MsiXEnable) != 0;
        bool functionMask = (control & VirtioPciLayout.MsiXFunctionMask) != 0;
        if (_interrupts.SetControls(enabled, functionMask, _header.BusMasterEnabled, _header.InterruptDisabled))
        {
            Log.PciMsiXControl(_log.Logger, enabled ? "enabled" : "disabled", functionMask, _header.BusMasterEnabled);
        }
    }

    private void UpdateDecoding()
    {
        bool on = _header.MemorySpaceEnabled;
        (ulong Bar0, ulong Bar1) decoded = (on ? BarAddress(CapabilityBar) : NotDecoded, on && _layout.Bar1Size != 0 ? BarAddress(MsiXBar) : NotDecoded);
        if (decoded == _decoded)
        {
            return;
        }

        if (decoded.Bar0 != _decoded.Bar0)
        {
            Log.PciBarMoved(_log.Logger, CapabilityBar, on ? decoded.Bar0 : 0, _layout.Bar0Size);
        }

        if (decoded.Bar1 != _decoded.Bar1)
        {
            Log.PciBarMoved(_log.Logger, MsiXBar, on ? decoded.Bar1 : 0, _layout.Bar1Size);
        }

        _decoded = decoded;
        BarsChanged?.Invoke(this);
    }

    /// <summary>
    /// A driver access of the PCI cfg capability's pci_cfg_data (virtio 1.2 §4.1.4.9): a BAR access of
    /// cap.length bytes at cap.offset in BAR cap.bar, whether or not the BARs decode. A read fills the data
    /// bytes before configuration space returns them; a write uses the first cap.length bytes of them.
    /// </summary>
    private void WindowAccess(bool write)
    {
        const int Cap = VirtioPciLayout.PciCfgCap;
        int bar = _header[Cap + VirtioPciLayout.CapBar];
        uint offset = _header.ReadUInt32(Cap + VirtioPciLayout.CapOffset);
        uint length = _header.ReadUInt32(Cap + VirtioPciLayout.CapLength);
        Span<byte> data = _header.Bytes.Slice(Cap + VirtioPciLayout.PciCfgData, 4);
        if (length is not (1 or 2 or 4) || offset % length != 0 || GetBarSize(bar) == 0)
        {
            _log.Ignore(PciIgnoredKind.ConfigWindow, "config", offset, (int)Math.Min(length, int.MaxValue));
            return;
        }

        if (write)
        {
            Span<byte> copy = stackalloc byte[4];
            data.CopyTo(copy);
            WriteBar(bar, offset, copy[..(int)length]);
        }
        else
        {
            data.Clear();
            ReadBar(bar, offset, data[..(int)length]);
        }
    }

    private void ReadBar(int bar, ulong offset, Span<byte> data)
    {
        if (!FitsBar(bar, offset, data.Length))
        {
            return;
        }

        if (bar == MsiXBar)
        {
            ReadMsiX((int)offset, data);
            return;
        }

        switch (offset)
        {
            case < VirtioPciLayout.IsrOffset:
                _common.Read((int)offset, data);
                break;
            case < VirtioPciLayout.DeviceOffset:
                if (offset == VirtioPciLayout.IsrOffset && data.Length == 1)
                {
                    data[0] = _interrupts.ReadAndClearIsr();
                }
                else
                {
                    _log.Ignore(PciIgnoredKind.IsrAccess, "isr", offset - VirtioPciLayout.IsrOffset, data.Length);
                }

                break;
            case < VirtioPciLayout.NotifyOffset:
                if (IsDeviceConfigAccess(offset - VirtioPciLayout.DeviceOffset, data.Length))
                {
                    Device.ReadConfig((int)(offset - VirtioPciLayout.DeviceOffset), data);
                }

                break;
            default:
                _log.Ignore(PciIgnoredKind.NotifyAccess, "notify", offset - VirtioPciLayout.NotifyOffset, data.Length);
                break;
        }
    }

    private void WriteBar(int bar, ulong offset, ReadOnlySpan<byte> data)
    {
        if (!FitsBar(bar, offset, data.Length))
        {
            return;
        }

        if (bar == MsiXBar)
        {
            WriteMsiX((int)offset, data);
            return;
        }

        switch (offset)
        {
            case < VirtioPciLayout.IsrOffset:
                _common.Write((int)offset, data);
                break;
            case < VirtioPciLayout.DeviceOffset:
                _log.Ignore(PciIgnoredKind.IsrAccess, "isr", offset - VirtioPciLayout.IsrOffset, data.Length);
                break;
            case < VirtioPciLayout.NotifyOffset:
                if (IsDeviceConfigAccess(offset - VirtioPciLayout.DeviceOffset, data.Length))
                {
                    Device.WriteConfig((int)(offset - VirtioPciLayout.DeviceOffset), data);
                }

                break;
            default:
                Doorbell(offset - VirtioPciLayout.NotifyOffset, data);
                break;
        }
    }

    private bool FitsBar(int bar, ulong offset, int length)
    {
        ulong size = GetBarSize(bar);
        if (length is 0 or > 8 || offset >= size || (ulong)length > size - offset)
        {
            _log.Ignore(PciIgnoredKind.BarUnused, "bar " + (bar == MsiXBar ? "1" : "0"), offset, length);
            return false;
        }

        return true;
    }

    private bool IsDeviceConfigAccess(ulong offset, int length)
    {
        if (!IsNatural(offset, length, 8) || offset + (ulong)length > (ulong)_layout.DeviceConfigLength)
        {
            _log.Ignore(PciIgnoredKind.DeviceConfigAccess, "device", offset, length);
            return false;
        }

        return true;
    }

    /// <summary>
    /// A doorbell write (virtio 1.2 §4.1.5.2): with a multiplier, the address tells the queue (as QEMU does;
    /// the value written is not checked); with multiplier 0 the 16-bit value written is the queue.
    /// </summary>
    private void Doorbell(ulong offset, ReadOnlySpan<byte> data)
    {
        bool wide = data.Length == 4 && NotifyOffMultiplier is 0 or >= 4;
        if ((data.Length != 2 && !wide) || offset % (ulong)data.Length != 0 || offset + (ulong)data.Length > _layout.NotifyLength
            || (NotifyOffMultiplier == 0 ? offset != 0 : offset % NotifyOffMultiplier != 0))
        {
            _log.Ignore(PciIgnoredKind.NotifyAccess, "notify", offset, data.Length);
            return;
        }

        ulong queue = NotifyOffMultiplier == 0 ? BinaryPrimitives.ReadUInt16LittleEndian(data) : offset / NotifyOffMultiplier;
        if (queue >= (ulong)Device.Queues.Count)
        {
            _log.Ignore(PciIgnoredKind.NoSuchQueue, "notify", offset, data.Length);
            return;
        }

        if (!_header.BusMasterEnabled)
        {
            _log.Ignore(PciIgnoredKind.NotifyWithoutBusMaster, "notify", offset, data.Length);
            return;
        }

        ushort index = (ushort)queue;
        if (QueueNotifyHandler is { } handler && handler(index))
        {
            return;
        }

        Device.NotifyQueue(index);
    }

    private static bool IsMsiXAccess(int offset, int length) => length is 4 or 8 && offset % length == 0;

    private void ReadMsiX(int offset, Span<byte> data)
    {
        if (!IsMsiXAccess(offset, data.Length))
        {
            _log.Ignore(PciIgnoredKind.MsiXWrongWidth, "msix", (ulong)offset, data.Length);
        }
        else if (offset < _layout.TableLength)
        {
            _interrupts.ReadTable(offset, data);
        }
        else if (offset >= _layout.PbaOffset && offset < _layout.PbaOffset + _layout.PbaLength)
        {
            _interrupts.ReadPba(offset - _layout.PbaOffset, data);
        }
        else
        {
            _log.Ignore(PciIgnoredKind.BarUnused, "msix", (ulong)offset, data.Length);
        }
    }

    private void WriteMsiX(int offset, ReadOnlySpan<byte> data)
    {
        if (!IsMsiXAccess(offset, data.Length))
        {
            _log.Ignore(PciIgnoredKind.MsiXWrongWidth, "msix", (ulong)offset, data.Length);
        }
        else if (offset < _layout.TableLength)
        {
            _interrupts.WriteTable(offset, data);
        }
        else if (offset >= _layout.PbaOffset && offset < _layout.PbaOffset + _layout.PbaLength)
        {
            _log.Ignore(PciIgnoredKind.PbaWrite, "msix", (ulong)offset, data.Length);
        }
        else
        {
            _log.Ignore(PciIgnoredKind.BarUnused, "msix", (ulong)offset, data.Length);
        }
    }
}
