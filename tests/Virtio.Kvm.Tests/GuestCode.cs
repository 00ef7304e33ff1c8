namespace Virtio.Kvm.Tests;

/// <summary>Hand-assembled 16-bit real-mode snippets (DS:0x50 is the MMIO doorbell at 0xD0050).</summary>
internal static class GuestCode
{
    /// <summary>mov eax, imm32 (66 B8 imm32).</summary>
    public static byte[] MovEax(uint value) =>
        [0x66, 0xB8, (byte)value, (byte)(value >> 8), (byte)(value >> 16), (byte)(value >> 24)];

    /// <summary>mov ecx, imm32 (66 B9 imm32).</summary>
    public static byte[] MovEcx(uint value) =>
        [0x66, 0xB9, (byte)value, (byte)(value >> 8), (byte)(value >> 16), (byte)(value >> 24)];

    /// <summary>mov ax, imm16 (B8 imm16).</summary>
    public static byte[] MovAx(ushort value) => [0xB8, (byte)value, (byte)(value >> 8)];

    /// <summary>mov [offset], ax: a 2-byte write to DS:offset (A3 offset16).</summary>
    public static byte[] StoreAx(ushort offset) => [0xA3, (byte)offset, (byte)(offset >> 8)];

    /// <summary>mov [offset], eax: a 4-byte write to DS:offset (66 A3 offset16).</summary>
    public static byte[] StoreEax(ushort offset) => [0x66, 0xA3, (byte)offset, (byte)(offset >> 8)];

    /// <summary>mov dx, imm16 (BA imm16).</summary>
    public static byte[] MovDx(ushort port) => [0xBA, (byte)port, (byte)(port >> 8)];

    /// <summary>mov [0x0050], eax: a 4-byte write to DS:0x50 (66 A3 50 00).</summary>
    public static readonly byte[] StoreEaxToDoorbell = [0x66, 0xA3, 0x50, 0x00];

    /// <summary>out dx, ax: a 2-byte port write (EF).</summary>
    public static readonly byte[] OutDxAx = [0xEF];

    /// <summary>hlt (F4).</summary>
    public static readonly byte[] Hlt = [0xF4];

    /// <summary>jmp $ (EB FE): spin forever.</summary>
    public static readonly byte[] Spin = [0xEB, 0xFE];

    /// <summary>loop rel8 using ECX (67 E2 rel8); <paramref name="bodyLength"/> bytes of body precede it.</summary>
    public static byte[] LoopEcx(int bodyLength) => [0x67, 0xE2, unchecked((byte)(sbyte)-(bodyLength + 3))];

    public static byte[] Concat(params byte[][] parts)
    {
        int length = 0;
        foreach (byte[] p in parts)
        {
            length += p.Length;
        }

        byte[] result = new byte[length];
        int at = 0;
        foreach (byte[] p in parts)
        {
            p.CopyTo(result, at);
            at += p.Length;
        }

        return result;
    }
}
