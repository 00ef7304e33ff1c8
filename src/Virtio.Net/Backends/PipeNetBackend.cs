using System;
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Core.Notifications;

namespace Virtio.Net.Backends;

/// <summary>
/// Frames through System.IO.Pipelines, for user-space network stacks and tests: transmitted frames are
/// written to <c>output</c>, received frames read from <c>input</c>. Each frame is a 4-byte little-endian
/// length followed by that many bytes; with virtio-net headers enabled the bytes start with the 12-byte
/// virtio_net_hdr_v1.
/// </summary>
/// <remarks>
/// <para>The device is the input's only reader. When the input holds no complete frame the backend starts
/// one <see cref="PipeReader.ReadAsync"/> whose completion signals <see cref="ReceiveReadyHandle"/>; no
/// thread waits and nothing is allocated per frame.</para>
/// <para>Transmit never blocks: while the output's flush is held back by its pause threshold, further
/// frames are refused (the device drops and counts them as backend-busy).</para>
/// </remarks>
public sealed class PipeNetBackend : INetBackend, IDisposable
{
    private const int LengthPrefix = 4;

    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly bool _vnetHeaders;
    private readonly EventFd _ready = EventFd.Create();
    private readonly Action _onReadCompleted;
    private readonly Lock _writeGate = new();
    private ConfiguredValueTaskAwaitable<ReadResult> _pendingRead;
    private ValueTask<FlushResult> _pendingFlush;
    private bool _flushPending;
    private volatile bool _reading;
    private volatile bool _inputCompleted;

    /// <summary>Creates the backend. Any thread.</summary>
    /// <param name="input">Frames for the guest.</param>
    /// <param name="output">Frames from the guest.</param>
    /// <param name="vnetHeaders">Whether frames carry a virtio-net header (and the backend claims all offloads).</param>
    public PipeNetBackend(PipeReader input, PipeWriter output, bool vnetHeaders = false)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        _input = input;
        _output = output;
        _vnetHeaders = vnetHeaders;
        _onReadCompleted = OnReadCompleted;

        // Start readable so the first receive looks at the input.
        _ready.Signal();
    }

    /// <inheritdoc />
    public NetOffloads Offloads => _vnetHeaders ? NetOffloads.Checksum | NetOffloads.Tso4 | NetOffloads.Tso6 : NetOffloads.None;

    /// <inheritdoc />
    public SafeHandle ReceiveReadyHandle => _ready;

    /// <summary>Frames skipped on input because they were larger than the receive buffer or shorter than a header.</summary>
    public long SkippedFrames { get; private set; }

    /// <inheritdoc />
    public void SetReceiveOffloads(NetOffloads guestOffloads)
    {
        // Frames pass as they are; the device completes checksums the guest cannot take.
    }

    /// <inheritdoc />
    public bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame)
    {
        lock (_writeGate)
        {
            if (_flushPending)
            {
                if (!_pendingFlush.IsCompleted)
                {
                    return false;
                }

                _flushPending = false;
                if (_pendingFlush.Result.IsCompleted)
                {
                    return false;
                }
            }

            int headerLength = _vnetHeaders ? VirtioNetHeader.Size : 0;
            int length = headerLength + frame.Length;
            Span<byte> span = _output.GetSpan(LengthPrefix + length);
            BinaryPrimitives.WriteInt32LittleEndian(span, length);
            if (_vnetHeaders)
            {
                header.Write(span[LengthPrefix..]);
            }

            frame.CopyTo(span[(LengthPrefix + headerLength)..]);
            _output.Advance(LengthPrefix + length);
#pragma warning disable CA2012 // Kept to be consumed exactly once, by a later transmit, when it completes.
            ValueTask<FlushResult> flush = _output.FlushAsync();
#pragma warning restore CA2012
            if (flush.IsCompleted)
            {
                _ = flush.Result;
            }
            else
            {
                _pendingFlush = flush;
                _flushPending = true;
            }

            return true;
        }
    }

    /// <inheritdoc />
    public bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header)
    {
        length = 0;
        header = default;
        if (_reading || _inputCompleted)
        {
            return false;
        }

        // Bounded: each pass consumes a frame or stops.
        while (true)
        {
            if (!_input.TryRead(out ReadResult result))
            {
                StartRead();
                return false;
            }

            ReadOnlySequence<byte> buffer = result.Buffer;
            if (buffer.Length >= LengthPrefix)
            {
                Span<byte> prefix = stackalloc byte[LengthPrefix];
                buffer.Slice(0, LengthPrefix).CopyTo(prefix);
                int size = BinaryPrimitives.ReadInt32LittleEndian(prefix);
                int headerLength = _vnetHeaders ? VirtioNetHeader.Size : 0;
                if (size >= 0 && buffer.Length >= LengthPrefix + (long)size)
                {
                    ReadOnlySequence<byte> body = buffer.Slice(LengthPrefix, size);
                    SequencePosition next = body.End;
                    if (size < headerLength || size - headerLength > frame.Length)
                    {
                        SkippedFrames++;
                        _input.AdvanceTo(next);
                        continue;
                    }

                    if (_vnetHeaders)
                    {
                        Span<byte> raw = stackalloc byte[VirtioNetHeader.Size];
                        body.Slice(0, VirtioNetHeader.Size).CopyTo(raw);
                        header = VirtioNetHeader.Read(raw);
                    }

                    ReadOnlySequence<byte> data = body.Slice(headerLength);
                    data.CopyTo(frame);
                    length = (int)data.Length;
                    _input.AdvanceTo(next);
                    return true;
                }

                if (size < 0)
                {
                    // A corrupt prefix: nothing after it can be framed again.
                    _input.AdvanceTo(buffer.End);
                    _inputCompleted = true;
                    _ready.TryConsume(out _);
                    return false;
                }
            }

            // No complete frame yet.
            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                _inputCompleted = true;
                _ready.TryConsume(out _);
                return false;
            }

            StartRead();
            return false;
        }
    }

    /// <summary>Closes the readiness fd. Call after the device stopped using the backend.</summary>
    public void Dispose() => _ready.Dispose();

    private void StartRead()
    {
        // Not readable until the pipe has more: clear the fd first, then wait.
        _ready.TryConsume(out _);
        _reading = true;
#pragma warning disable CA2012 // Consumed exactly once, by OnReadCompleted.
        _pendingRead = _input.ReadAsync().ConfigureAwait(false);
#pragma warning restore CA2012
        _pendingRead.GetAwaiter().UnsafeOnCompleted(_onReadCompleted);
    }

    private void OnReadCompleted()
    {
        try
        {
            ReadResult result = _pendingRead.GetAwaiter().GetResult();

            // Consume and examine nothing: the device's next TryRead sees the same bytes at once.
            _input.AdvanceTo(result.Buffer.Start);
        }
        catch (InvalidOperationException)
        {
            _inputCompleted = true;
        }

        _reading = false;
        _ready.Signal();
    }
}
