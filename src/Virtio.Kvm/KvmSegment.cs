using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Virtio.Kvm;

/// <summary>One x86 segment register as KVM sees it: struct kvm_segment (24 bytes), field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
[SuppressMessage("Design", "CA1051:Do not declare visible instance fields", Justification = "Mirrors struct kvm_segment.")]
public struct KvmSegment
{
    /// <summary>The segment base address.</summary>
    public ulong Base;

    /// <summary>The limit in bytes (already scaled by the granularity bit).</summary>
    public uint Limit;

    /// <summary>The selector.</summary>
    public ushort Selector;

    /// <summary>The descriptor type (bits 8-11 of the access rights: 3 = read/write accessed data, 11 = execute/read accessed code).</summary>
    public byte Type;

    /// <summary>Present bit.</summary>
    public byte Present;

    /// <summary>Descriptor privilege level.</summary>
    public byte Dpl;

    /// <summary>Default operation size (1 = 32-bit).</summary>
    public byte Db;

    /// <summary>Descriptor type bit (1 = code or data).</summary>
    public byte S;

    /// <summary>64-bit code segment.</summary>
    public byte L;

    /// <summary>Granularity (1 = 4 KiB units).</summary>
    public byte G;

    /// <summary>Available for software.</summary>
    public byte Avl;

    /// <summary>Whether the segment is unusable (a null selector in protected mode).</summary>
    public byte Unusable;

    /// <summary>Padding.</summary>
    public byte Padding;

    /// <summary>A real-mode segment: base = selector * 16, 64 KiB limit, present, read/write (or execute/read for code).</summary>
    /// <param name="selector">The segment value.</param>
    /// <param name="code">Whether it is a code segment (CS).</param>
    /// <returns>The segment.</returns>
    public static KvmSegment RealMode(ushort selector, bool code = false) => new()
    {
        Base = (ulong)selector << 4,
        Limit = 0xFFFF,
        Selector = selector,
        Type = code ? (byte)11 : (byte)3,
        Present = 1,
        S = 1,
    };
}
