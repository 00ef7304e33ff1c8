using System;
using System.Runtime.InteropServices;
using System.Threading;
using Virtio.Core.Notifications;

namespace Virtio.Net.Backends;

/// <summary>
/// One end of a <see cref="LoopbackPair"/>: a bounded ring of frame slots filled by the peer's
/// transmit and drained by this end's receive. Slots grow to the largest frame seen and are reused,
/// so steady traffic allocates nothing. Its eventfd is signalled while frames wait.
/// </summary>
internal sealed class LoopbackEndpoint : INetBackend, IDisposable
{
    private readonly Lock _gate = new();
    private readonly byte[][] _slots;
    private readonly int[] _lengths;
    private readonly VirtioNetHeader[] _headers;
    private readonly EventFd _ready = EventFd.Create();
    private int _head;
    private int _count;

    public LoopbackEndpoint(int capacity, NetOffloads offloads)
    {
        Offloads = offloads;
        _slots = new byte[capacity][];
        _lengths = new int[capacity];
        _headers = new VirtioNetHeader[capacity];
        for (int i = 0; i < capacity; i++)
        {
            _slots[i] = new byte[2048];
        }
    }

    public LoopbackEndpoint Peer { get; set; } = null!;

    public NetOffloads Offloads { get; }

    public SafeHandle ReceiveReadyHandle => _ready;

    public void SetReceiveOffloads(NetOffloads guestOffloads)
    {
        // Headers pass through; the receiving device adapts them to what its guest negotiated.
    }

    public bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame) => Peer.Enqueue(header, frame);

    public bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header)
    {
        lock (_gate)
        {
            if (_count == 0)
            {
                // Level semantics: the fd is readable exactly while frames wait.
                _ready.TryConsume(out _);
                length = 0;
                header = default;
                return false;
            }

            length = _lengths[_head];
            header = _headers[_head];
            if (length > frame.Length)
            {
                length = frame.Length;
            }

            _slots[_head].AsSpan(0, length).CopyTo(frame);
            _head = (_head + 1) % _slots.Length;
            _count--;
            return true;
        }
    }

    public void Dispose() => _ready.Dispose();

    private bool Enqueue(in VirtioNetHeader header, NetFrameSegments frame)
    {
        lock (_gate)
        {
            if (_count == _slots.Length)
            {
                return false;
            }

            int tail = (_head + _count) % _slots.Length;
            if (_slots[tail].Length < frame.Length)
            {
                _slots[tail] = new byte[Math.Max(frame.Length, _slots[tail].Length * 2)];
            }

            frame.CopyTo(_slots[tail]);
            _lengths[tail] = frame.Length;
            _headers[tail] = header;
            if (_count++ == 0)
            {
                _ready.Signal();
            }

            return true;
        }
    }
}
