using System;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>
/// A hostile guest against the PCI function (FsCheck, fixed seed: see <see cref="RingPropertyAttribute"/>): any
/// sequence of configuration-space and BAR accesses, of any width, offset and value, interleaved with the device's
/// interrupts, never throws and never indexes out of range, and the header's fixed parts stay fixed.
/// </summary>
public sealed class PciHostileAccessProperties
{
    private static readonly int[] Widths = [0, 1, 2, 3, 4, 8, 16, 2, 4];

    [RingProperty]
    public Property AnyAccessSequence_NeverThrows_AndTheHeaderKeepsItsIdentity(byte[] script, bool msiX, bool live)
    {
        using var rig = new PciRig(queues: 2, queueMaxSize: 64, msiX: msiX, options: new VirtioPciFunctionOptions { MsiXVectorCount = msiX ? 3 : null });
        try
        {
            rig.Driver.Probe(0xC000_0000);
            if (msiX)
            {
                rig.Driver.EnableMsiX(v => new MsiMessage(0xFEE0_0000, v));
            }

            if (live)
            {
                rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
            }

            Span<byte> data = stackalloc byte[16];
            for (int i = 0; i + 8 <= script.Length; i += 8)
            {
                int op = script[i] % 9;
                int raw = script[i + 1] | (script[i + 2] << 8);
                int width = Widths[script[i + 3] % Widths.Length];
                Span<byte> access = data[..width];
                if ((script[i + 3] & 0x80) != 0)
                {
                    access.Fill(0xFF);
                }
                else
                {
                    for (int b = 0; b < width; b++)
                    {
                        access[b] = script[i + 4 + (b % 4)];
                    }
                }

                switch (op)
                {
                    case 0:
                    case 1:
                        rig.Function.WriteConfigSpace(ConfigOffset(raw, script[i + 4]), access);
                        break;
                    case 2:
                        rig.Function.ReadConfigSpace(ConfigOffset(raw, script[i + 4]), access);
                        break;
                    case 3:
                    case 4:
                        rig.Function.TryWriteMemory(BarAddress(rig, 0, raw), access);
                        break;
                    case 5:
                        rig.Function.TryReadMemory(BarAddress(rig, 0, raw), access);
                        break;
                    case 6:
                        rig.Function.TryWriteMemory(BarAddress(rig, 1, raw), access);
                        break;
                    case 7:
                        rig.Function.TryReadMemory(BarAddress(rig, 1, raw), access);
                        break;
                    default:
                        // The device's side: an interrupt for any queue, real or not, or an unplanned address.
                        var reason = (script[i + 4] & 1) == 0 ? InterruptReason.UsedBuffer : InterruptReason.ConfigurationChange;
                        rig.Function.Device.GuestNotifier!.Notify(reason, (ushort)raw);
                        rig.Function.TryReadMemory(((ulong)raw << 16) | script[i + 5], access);
                        break;
                }

                if (rig.Driver.ReadConfig(0, 4) != ((0x1040u + RecordingDevice.TestDeviceId) << 16 | 0x1AF4u)
                    || rig.Driver.ReadConfig(0x0E, 1) != 0 || (rig.Driver.ReadConfig(0x10, 4) & 0x3FFF) != 0
                    || rig.Driver.ReadConfig(0x34, 1) != 0x40 || (rig.Driver.ReadConfig(0x06, 2) & 0x10) == 0)
                {
                    return false.Label($"the header changed at step {i / 8}");
                }

                if (rig.Function.IsIntxAsserted && rig.Function.IsMsiXEnabled)
                {
                    return false.Label($"INTx asserted under MSI-X at step {i / 8}");
                }
            }

            return true.ToProperty();
        }
        catch (Exception exception)
        {
            return false.Label($"threw {exception.GetType().Name}: {exception.Message}");
        }
    }

    /// <summary>Mostly the header and capabilities, sometimes past 256, past 4096 or negative.</summary>
    private static int ConfigOffset(int raw, byte mode) => (mode % 8) switch
    {
        0 => raw - 0x8000,
        1 => raw % 0x1100,
        _ => raw % 0x100,
    };

    /// <summary>Inside the BAR (or its current place, decoding or not), sometimes just past it.</summary>
    private static ulong BarAddress(PciRig rig, int bar, int raw)
    {
        ulong size = Math.Max(rig.Function.GetBarSize(bar), 0x1000);
        ulong baseAddress = rig.Function.TryGetBarAddress(bar, out ulong address) ? address : 0xC000_0000 + ((ulong)bar * 0x4000);
        return baseAddress + ((ulong)raw % (size + 16));
    }
}
