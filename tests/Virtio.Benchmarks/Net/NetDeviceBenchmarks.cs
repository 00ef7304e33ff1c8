using System;
using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO.Pipelines;
using System.Threading.Tasks;
using BenchmarkDotNet.Attributes;
using Virtio.Net;
using Virtio.Net.Backends;

namespace Virtio.Benchmarks.Net;

/// <summary>
/// Frames through the virtio-net device, per frame: guest tx chain → device → backend, and backend →
/// device → guest rx buffer. Loopback: device A's transmit feeds device B's receive. Pipe: transmit into
/// an output pipe (read and discarded), and receive from an input pipe the benchmark fills. 65536 is a
/// TSO frame: the guest sends it with a GSO_TCPV4 header (HOST_TSO4 negotiated), the backends carry the
/// header (the pipe with virtio-net headers on), and the receiving guest takes it whole (GUEST_TSO4).
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet derives its generated runner from this class.</remarks>
[MemoryDiagnoser]
[OperationsPerSecond]
[SuppressMessage("Design", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: GlobalCleanup disposes everything.")]
public class NetDeviceBenchmarks
{
    /// <summary>Frames per benchmark invocation; the reported time is per frame.</summary>
    private const int Batch = 32;

    private LoopbackPair _pair = null!;
    private BenchGuest _a = null!;
    private BenchGuest _b = null!;
    private Pipe _toGuest = null!;
    private Pipe _fromGuest = null!;
    private PipeNetBackend _pipeBackend = null!;
    private BenchGuest _piped = null!;
    private byte[] _frame = null!;

    /// <summary>The Ethernet frame's size.</summary>
    [Params(64, 1500, 65536)]
    public int FrameSize { get; set; }

    /// <summary>Builds both setups and checks one round of each moves every frame.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _pair = new LoopbackPair(capacity: 256);
        _a = new BenchGuest(_pair.First, FrameSize);
        _b = new BenchGuest(_pair.Second, FrameSize);
        _b.PostRx(Batch);

        _toGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        _fromGuest = new Pipe(new PipeOptions(pauseWriterThreshold: 0, readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        _pipeBackend = new PipeNetBackend(_toGuest.Reader, _fromGuest.Writer, vnetHeaders: _a.Tso);
        _piped = new BenchGuest(_pipeBackend, FrameSize);
        _piped.PostRx(Batch);

        // What the input pipe carries per frame: [virtio_net_hdr_v1 for TSO] + the frame.
        _frame = new byte[(_a.Tso ? VirtioNetHeader.Size : 0) + FrameSize];
        if (_a.Tso)
        {
            new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, VirtioNetHeader.GsoTcpV4, 54, 1448, 34, 16, 0).Write(_frame);
        }

        for (int round = 0; round < 3; round++)
        {
            Check(LoopbackTxToRx(), "loopback");
            Check(PipeTx(), "pipe tx");
            Check(PipeRx(), "pipe rx");
        }
    }

    /// <summary>Closes the devices, guests and backends.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _piped.Dispose();
        _pair.Dispose();
        _pipeBackend.Dispose();
    }

    /// <summary>Device A transmits a batch; device B receives it into posted buffers; both guests consume and re-post.</summary>
    /// <returns>Frames B's guest received.</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int LoopbackTxToRx()
    {
        _a.Send(Batch);
        _b.Mmio.Notify(0);
        BenchGuest.Drain(_a.Tx);
        int received = BenchGuest.Drain(_b.Rx);
        _b.PostRx(received);
        return received;
    }

    /// <summary>The guest transmits a batch into the output pipe, which is then emptied.</summary>
    /// <returns>Frames the guest got back as sent.</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int PipeTx()
    {
        _piped.Send(Batch);
        if (_fromGuest.Reader.TryRead(out ReadResult result))
        {
            _fromGuest.Reader.AdvanceTo(result.Buffer.End);
        }

        return BenchGuest.Drain(_piped.Tx);
    }

    /// <summary>A batch of length-prefixed frames is written into the input pipe; the rx kick delivers them.</summary>
    /// <returns>Frames the guest received.</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int PipeRx()
    {
        PipeWriter writer = _toGuest.Writer;
        for (int i = 0; i < Batch; i++)
        {
            Span<byte> span = writer.GetSpan(4 + _frame.Length);
            BinaryPrimitives.WriteInt32LittleEndian(span, _frame.Length);
            _frame.CopyTo(span[4..]);
            writer.Advance(4 + _frame.Length);
        }

        // No pause threshold and an inline reader scheduler: the flush completes synchronously.
        ValueTask<FlushResult> flush = writer.FlushAsync();
        if (!flush.IsCompleted)
        {
            throw new InvalidOperationException("The input pipe's flush did not complete synchronously.");
        }

        _ = flush.Result;

        _piped.Mmio.Notify(0);
        int received = BenchGuest.Drain(_piped.Rx);
        _piped.PostRx(received);
        return received;
    }

    private static void Check(int frames, string what)
    {
        if (frames != Batch)
        {
            throw new InvalidOperationException($"{what}: {frames} of {Batch} frames moved.");
        }
    }
}
