using System.Collections.Generic;
using Virtio.Core.Memory;

namespace Virtio.Fuzz;

/// <summary>A chain a target's driver posted: its buffers, the bytes it gave the device, and room for the device's.</summary>
/// <param name="Head">Its head index.</param>
/// <param name="Buffers">The buffers in chain order.</param>
/// <param name="Readable">The device-readable bytes, concatenated.</param>
/// <param name="WritableLength">The device-writable bytes in all.</param>
internal sealed record PostedChain(ushort Head, IReadOnlyList<(GuestAddress Address, int Length, bool Writable)> Buffers, byte[] Readable, int WritableLength);
