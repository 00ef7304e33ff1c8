using System;
using System.Buffers.Binary;

namespace Virtio.Net.Tests;

/// <summary>Builds Ethernet frames for tests.</summary>
internal static class Frames
{
    public static readonly byte[] GuestMac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    public static readonly byte[] PeerMac = [0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF];
    public static readonly byte[] Broadcast = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    /// <summary>A frame to <paramref name="destination"/> from <paramref name="source"/>, ethertype 0x88B5 (local experimental), payload a counting pattern.</summary>
    public static byte[] Make(int length, byte[]? destination = null, byte[]? source = null, byte seed = 0)
    {
        byte[] frame = new byte[length];
        (destination ?? Broadcast).CopyTo(frame, 0);
        (source ?? PeerMac).CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x88B5);
        for (int i = 14; i < length; i++)
        {
            frame[i] = (byte)(i + seed);
        }

        return frame;
    }
}
