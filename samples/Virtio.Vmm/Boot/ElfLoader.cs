using System;
using System.Buffers.Binary;
using System.Globalization;
using Virtio.Core.Memory;

namespace Virtio.Vmm.Boot;

/// <summary>
/// Loads an ELF64 x86-64 executable as the boot contract says (samples/guest/README.md): each PT_LOAD
/// segment is copied to its p_paddr and zero-filled up to p_memsz; segments outside RAM or below 1 MiB
/// are refused, and so is an entry point outside the loaded segments.
/// </summary>
internal static class ElfLoader
{
    /// <summary>The lowest guest physical address a segment may use: below it are the page tables, boot info and stack.</summary>
    public const ulong LowestLoadAddress = 0x100000;

    private const int HeaderSize = 64;
    private const int ProgramHeaderSize = 56;
    private const uint PtLoad = 1;

    /// <summary>Checks <paramref name="image"/> and copies its segments into <paramref name="memory"/>.</summary>
    /// <param name="image">The file's bytes.</param>
    /// <param name="memory">Guest RAM, one region at 0 of <paramref name="memorySize"/> bytes.</param>
    /// <param name="memorySize">The RAM size.</param>
    /// <returns>The entry point (e_entry).</returns>
    /// <exception cref="GuestImageException">The image is not a loadable ELF64 x86-64 executable, or does not fit.</exception>
    public static ulong Load(ReadOnlySpan<byte> image, GuestMemory memory, ulong memorySize)
    {
        if (image.Length < HeaderSize || !image[..4].SequenceEqual("\u007fELF"u8))
        {
            throw new GuestImageException("not an ELF file (no \\x7fELF magic)");
        }

        if (image[4] != 2 || image[5] != 1)
        {
            throw new GuestImageException($"not a little-endian ELF64 file (class {image[4]}, data {image[5]})");
        }

        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(image[16..]);
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(image[18..]);
        if (type != 2 || machine != 62)
        {
            throw new GuestImageException($"not an x86-64 executable (e_type {type}, e_machine {machine}; want 2 and 62)");
        }

        ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(image[24..]);
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(image[32..]);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(image[54..]);
        ushort phnum = BinaryPrimitives.ReadUInt16LittleEndian(image[56..]);
        if (phentsize != ProgramHeaderSize || phnum == 0 || phoff > (ulong)image.Length || (ulong)phnum * ProgramHeaderSize > (ulong)image.Length - phoff)
        {
            throw new GuestImageException($"bad program header table (offset {phoff}, {phnum} entries of {phentsize} bytes, file {image.Length} bytes)");
        }

        bool entryLoaded = false;
        int loaded = 0;
        for (int i = 0; i < phnum; i++)
        {
            ReadOnlySpan<byte> ph = image.Slice((int)phoff + (i * ProgramHeaderSize), ProgramHeaderSize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != PtLoad)
            {
                continue;
            }

            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            ulong vaddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[16..]);
            ulong paddr = BinaryPrimitives.ReadUInt64LittleEndian(ph[24..]);
            ulong fileSize = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            ulong memSize = BinaryPrimitives.ReadUInt64LittleEndian(ph[40..]);
            string where = string.Create(CultureInfo.InvariantCulture, $"segment {i} (p_paddr 0x{paddr:x}, p_memsz 0x{memSize:x})");
            if (fileSize > memSize)
            {
                throw new GuestImageException($"{where}: p_filesz 0x{fileSize:x} is larger than p_memsz");
            }

            if (offset > (ulong)image.Length || fileSize > (ulong)image.Length - offset)
            {
                throw new GuestImageException($"{where}: file bytes [0x{offset:x}, +0x{fileSize:x}) lie past the end of the file ({image.Length} bytes)");
            }

            if (paddr < LowestLoadAddress)
            {
                throw new GuestImageException($"{where}: below 1 MiB, where the page tables, boot info and stack live");
            }

            if (paddr > memorySize || memSize > memorySize - paddr)
            {
                throw new GuestImageException($"{where}: outside RAM (0x{memorySize:x} bytes; try a larger --memory)");
            }

            if (memSize > int.MaxValue)
            {
                throw new GuestImageException($"{where}: larger than 2 GiB");
            }

            if (memSize > 0)
            {
                if (!memory.TryGetSpan(new GuestAddress(paddr), (int)memSize, out Span<byte> target))
                {
                    throw new GuestImageException($"{where}: not contiguous guest RAM");
                }

                image.Slice((int)offset, (int)fileSize).CopyTo(target);
                target[(int)fileSize..].Clear();
            }

            if (entry >= vaddr && entry - vaddr < memSize)
            {
                entryLoaded = true;
            }

            loaded++;
        }

        if (loaded == 0)
        {
            throw new GuestImageException("no PT_LOAD segment");
        }

        if (!entryLoaded)
        {
            throw new GuestImageException(string.Create(CultureInfo.InvariantCulture, $"entry point 0x{entry:x} is not inside a loaded segment"));
        }

        return entry;
    }
}
