using System;
using System.Collections.Generic;
using Virtio.Testing;

namespace Virtio.Fuzz;

/// <summary>
/// Posts chains whose shape and bytes come from the input, through a <see cref="GuestDriver"/>
/// (the descriptors themselves follow the ring rules: the ring target covers broken rings). A
/// chain is a byte (low 3 bits: buffers - 1), then per buffer a u16 (bit 15: device-writable, low
/// 15 bits: length, capped at the block size), then the bytes of its readable buffers, in order.
/// </summary>
internal static class FuzzedChains
{
    [ThreadStatic]
    private static List<BufferSpec>? t_specs;

    /// <summary>Posts one chain (not kicked); null when the driver has no room for it.</summary>
    /// <param name="reader">The input.</param>
    /// <param name="guest">The driver of the queue.</param>
    /// <param name="forceIndirect">Put the chain in an indirect table (when negotiated).</param>
    /// <param name="inOrder">Cleared when the chain has a readable buffer after a writable one (a ring-rule violation).</param>
    /// <returns>The chain, its readable bytes and its writable size.</returns>
    public static PostedChain? Post(ref FuzzInput reader, GuestDriver guest, bool forceIndirect, ref bool inOrder)
    {
        List<BufferSpec> specs = t_specs ??= new List<BufferSpec>(8);
        specs.Clear();
        int count = 1 + (reader.Byte() & 7);
        bool seenWritable = false;
        for (int i = 0; i < count; i++)
        {
            ushort raw = reader.UInt16();
            bool writable = (raw & 0x8000) != 0;
            inOrder &= writable || !seenWritable;
            seenWritable |= writable;
            specs.Add(new BufferSpec(Math.Min(raw & 0x7FFF, guest.BlockSize), writable));
        }

        int head = guest.TryAddChain(specs.ToArray(), forceIndirect && guest.Indirect ? true : null, fill: 0);
        if (head < 0)
        {
            return null;
        }

        var buffers = guest.ChainBuffers((ushort)head);
        var readable = new List<byte>();
        int writableTotal = 0;
        foreach (var (address, length, writable) in buffers)
        {
            Span<byte> span = guest.Span(address, length);
            if (writable)
            {
                span.Fill(0xCC);
                writableTotal += length;
            }
            else
            {
                reader.Fill(span);
                foreach (byte b in span)
                {
                    readable.Add(b);
                }
            }
        }

        return new PostedChain((ushort)head, buffers, readable.ToArray(), writableTotal);
    }

    /// <summary>Allows the device to write the writable buffers of <paramref name="chain"/>.</summary>
    public static void AllowWrites(MemoryGuard guard, PostedChain chain)
    {
        foreach (var (address, length, writable) in chain.Buffers)
        {
            if (writable)
            {
                guard.AllowWrite(address.Value, (ulong)length);
            }
        }
    }

    /// <summary>Copies the writable bytes of <paramref name="chain"/> (as the device left them) into <paramref name="destination"/>.</summary>
    /// <returns>How many bytes.</returns>
    public static int ReadWritable(GuestDriver guest, PostedChain chain, Span<byte> destination)
    {
        int at = 0;
        foreach (var (address, length, writable) in chain.Buffers)
        {
            if (writable)
            {
                guest.Span(address, length).CopyTo(destination[at..]);
                at += length;
            }
        }

        return at;
    }
}
