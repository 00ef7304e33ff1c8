using Virtio.Core.Transport.Pci;

namespace Virtio.Kvm.Notifications;

/// <summary>
/// What an x86 MSI may be (Intel SDM vol. 3, §11.11 "Message Signalled Interrupts"): the address is in
/// the local APICs' interrupt window 0xFEE00000-0xFEEFFFFF (bits 12-19 the destination, bits 2-3 the
/// mode and redirection hint; the upper 32 bits zero), and the data's delivery mode (bits 8-10) is not
/// one of the two reserved encodings. A guest-programmed message that is anything else is not
/// installed: it would not be an interrupt on real hardware but a memory write.
/// </summary>
internal static class X86Msi
{
    /// <summary>The base of the local APICs' interrupt window.</summary>
    public const ulong InterruptWindow = 0xFEE0_0000;

    private const ulong WindowMask = ~0xF_FFFFUL;

    /// <summary>Why <paramref name="message"/> is no x86 interrupt, or null when it is one.</summary>
    public static string? Refusal(MsiMessage message)
    {
        if ((message.Address & WindowMask) != InterruptWindow)
        {
            return "the address is outside the interrupt window 0xFEE00000-0xFEEFFFFF";
        }

        uint deliveryMode = (message.Data >> 8) & 7;
        if (deliveryMode is 3 or 6)
        {
            return $"delivery mode {deliveryMode} is reserved";
        }

        return null;
    }
}
