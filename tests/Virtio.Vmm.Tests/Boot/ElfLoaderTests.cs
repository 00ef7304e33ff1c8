using System;
using System.Buffers.Binary;
using Virtio.Core.Memory;
using Virtio.Vmm.Boot;
using Xunit;

namespace Virtio.Vmm.Tests.Boot;

/// <summary>The loader's refusals, on hand-built ELF64 images: each names what is wrong.</summary>
public sealed class ElfLoaderTests
{
    private const ulong Ram = 4 << 20;

    [Fact]
    public void Load_OneSegmentAt1MiB_CopiesItZeroFillsTheRestAndReturnsTheEntry()
    {
        using GuestMemory memory = GuestMemory.CreateAnonymous(Ram);
        Assert.True(memory.TryGetSpan(new GuestAddress(0x100000), 32, out Span<byte> target));
        target.Fill(0xEE);

        ulong entry = ElfLoader.Load(TestElf.Build(paddr: 0x100000, fileSize: 4, memSize: 32, entry: 0x100002), memory, Ram);

        Assert.Equal(0x100002UL, entry);
        Assert.Equal([0x90, 0x90, 0x90, 0xF4], target[..4].ToArray());
        Assert.All(target[4..].ToArray(), b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(0x8000UL, 16UL, 0x8000UL, "below 1 MiB")]
    [InlineData(0x3FFFF0UL, 32UL, 0x3FFFF0UL, "outside RAM")]
    [InlineData(0x100000UL, 16UL, 0x200000UL, "not inside a loaded segment")]
    public void Load_BadPlacement_IsRefusedWithTheReason(ulong paddr, ulong memSize, ulong entry, string reason)
    {
        using GuestMemory memory = GuestMemory.CreateAnonymous(Ram);
        var e = Assert.Throws<GuestImageException>(() => ElfLoader.Load(TestElf.Build(paddr, 4, memSize, entry), memory, Ram));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NotX86_64Executable_IsRefused()
    {
        using GuestMemory memory = GuestMemory.CreateAnonymous(Ram);
        byte[] image = TestElf.Build(0x100000, 4, 16, 0x100000);
        image[18] = 0xB7; // EM_AARCH64
        var e = Assert.Throws<GuestImageException>(() => ElfLoader.Load(image, memory, Ram));
        Assert.Contains("not an x86-64 executable", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_FileBytesPastTheEnd_AreRefused()
    {
        using GuestMemory memory = GuestMemory.CreateAnonymous(Ram);
        byte[] image = TestElf.Build(0x100000, 4, 16, 0x100000);
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(64 + 32), 4096); // p_filesz
        BinaryPrimitives.WriteUInt64LittleEndian(image.AsSpan(64 + 40), 4096); // p_memsz
        var e = Assert.Throws<GuestImageException>(() => ElfLoader.Load(image, memory, Ram));
        Assert.Contains("past the end of the file", e.Message, StringComparison.Ordinal);
    }
}
