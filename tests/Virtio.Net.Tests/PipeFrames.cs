using System;
using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Threading;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>The other end of a <see cref="Virtio.Net.Backends.PipeNetBackend"/>: writes frames for the guest, reads the guest's.</summary>
internal sealed class PipeFrames
{
    public PipeFrames(bool vnetHeaders = false)
    {
        VnetHeaders = vnetHeaders;
        Backend = new Virtio.Net.Backends.PipeNetBackend(ToGuest.Reader, FromGuest.Writer, vnetHeaders);
    }

    public bool VnetHeaders { get; }

    public Pipe ToGuest { get; } = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));

    public Pipe FromGuest { get; } = new(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));

    public Virtio.Net.Backends.PipeNetBackend Backend { get; }

    public void Write(ReadOnlySpan<byte> frame, VirtioNetHeader header = default)
    {
        int headerLength = VnetHeaders ? VirtioNetHeader.Size : 0;
        Span<byte> span = ToGuest.Writer.GetSpan(4 + headerLength + frame.Length);
        BinaryPrimitives.WriteInt32LittleEndian(span, headerLength + frame.Length);
        if (VnetHeaders)
        {
            header.Write(span[4..]);
        }

        frame.CopyTo(span[(4 + headerLength)..]);
        ToGuest.Writer.Advance(4 + headerLength + frame.Length);
        Assert.True(ToGuest.Writer.FlushAsync().AsTask().Wait(NetRig.Timeout));
    }

    public (VirtioNetHeader Header, byte[] Frame) Read()
    {
        using var cancel = new CancellationTokenSource(NetRig.Timeout);
        while (true)
        {
            ReadResult result = FromGuest.Reader.ReadAsync(cancel.Token).AsTask().GetAwaiter().GetResult();
            ReadOnlySequence<byte> buffer = result.Buffer;
            if (buffer.Length >= 4)
            {
                byte[] prefix = buffer.Slice(0, 4).ToArray();
                int size = BinaryPrimitives.ReadInt32LittleEndian(prefix);
                if (buffer.Length >= 4 + size)
                {
                    byte[] body = buffer.Slice(4, size).ToArray();
                    FromGuest.Reader.AdvanceTo(buffer.Slice(0, 4 + size).End);
                    return VnetHeaders
                        ? (VirtioNetHeader.Read(body), body[VirtioNetHeader.Size..])
                        : (default, body);
                }
            }

            FromGuest.Reader.AdvanceTo(buffer.Start, buffer.End);
            Assert.False(result.IsCompleted, "The guest's output ended.");
        }
    }

    public bool TryReadNow(out byte[] frame)
    {
        frame = [];
        if (!FromGuest.Reader.TryRead(out ReadResult result))
        {
            return false;
        }

        ReadOnlySequence<byte> buffer = result.Buffer;
        if (buffer.Length >= 4)
        {
            int size = BinaryPrimitives.ReadInt32LittleEndian(buffer.Slice(0, 4).ToArray());
            if (buffer.Length >= 4 + size)
            {
                frame = buffer.Slice(4, size).ToArray();
                FromGuest.Reader.AdvanceTo(buffer.Slice(0, 4 + size).End);
                return true;
            }
        }

        FromGuest.Reader.AdvanceTo(buffer.Start);
        return false;
    }
}
