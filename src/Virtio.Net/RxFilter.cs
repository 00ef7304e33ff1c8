using System;

namespace Virtio.Net;

/// <summary>
/// The guest's receive filter (VIRTIO_NET_F_CTRL_RX): promiscuous and all-multicast modes and
/// the MAC tables. Immutable: the control queue swaps in a new instance, receive threads read it.
/// </summary>
internal sealed class RxFilter
{
    public const int MaxTableEntries = 64;

    // A device starts promiscuous (as QEMU does): drivers without CTRL_RX expect every frame.
    public static readonly RxFilter Default = new(promiscuous: true, allMulticast: false, [], [], false, false);

    private readonly byte[] _unicast;
    private readonly byte[] _multicast;
    private readonly bool _unicastOverflow;
    private readonly bool _multicastOverflow;

    public RxFilter(bool promiscuous, bool allMulticast, byte[] unicast, byte[] multicast, bool unicastOverflow, bool multicastOverflow)
    {
        Promiscuous = promiscuous;
        AllMulticast = allMulticast;
        _unicast = unicast;
        _multicast = multicast;
        _unicastOverflow = unicastOverflow;
        _multicastOverflow = multicastOverflow;
    }

    public bool Promiscuous { get; }

    public bool AllMulticast { get; }

    public int UnicastEntries => _unicast.Length / 6;

    public int MulticastEntries => _multicast.Length / 6;

    public RxFilter WithPromiscuous(bool on) => new(on, AllMulticast, _unicast, _multicast, _unicastOverflow, _multicastOverflow);

    public RxFilter WithAllMulticast(bool on) => new(Promiscuous, on, _unicast, _multicast, _unicastOverflow, _multicastOverflow);

    public RxFilter WithTables(byte[] unicast, byte[] multicast, bool unicastOverflow, bool multicastOverflow) =>
        new(Promiscuous, AllMulticast, unicast, multicast, unicastOverflow, multicastOverflow);

    /// <summary>Whether a frame to <paramref name="destination"/> reaches a guest whose address is <paramref name="mac"/>.</summary>
    public bool Accepts(ReadOnlySpan<byte> destination, ReadOnlySpan<byte> mac)
    {
        if (Promiscuous)
        {
            return true;
        }

        if ((destination[0] & 1) != 0)
        {
            if (destination.SequenceEqual((ReadOnlySpan<byte>)[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]))
            {
                return true;
            }

            return AllMulticast || _multicastOverflow || Contains(_multicast, destination);
        }

        return destination.SequenceEqual(mac) || _unicastOverflow || Contains(_unicast, destination);
    }

    private static bool Contains(byte[] table, ReadOnlySpan<byte> address)
    {
        for (int i = 0; i + 6 <= table.Length; i += 6)
        {
            if (address.SequenceEqual(table.AsSpan(i, 6)))
            {
                return true;
            }
        }

        return false;
    }
}
