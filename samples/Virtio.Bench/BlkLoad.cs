using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;

namespace Virtio.Bench;

/// <summary>
/// One bounded load run: connects with <see cref="VhostUserFrontEnd"/>, sets up one ring
/// (EVENT_IDX when offered), keeps <see cref="BlkOptions.QueueDepth"/> requests in flight for
/// <see cref="BlkOptions.Seconds"/>, then drains (bounded) and disconnects.
/// </summary>
internal static class BlkLoad
{
    private const ulong VersionOne = 1ul << 32;
    private const ulong EventIdx = 1ul << 29;
    private const int Sector = 512;

    public static BlkResult Run(BlkOptions o, TextWriter log)
    {
        using VhostUserFrontEnd frontEnd = VhostUserFrontEnd.Connect(o.SocketPath);
        VhostUserNegotiation negotiation = frontEnd.Negotiate(VersionOne | EventIdx, VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.MultiQueue);
        bool eventIdx = (negotiation.Features & EventIdx) != 0;
        Span<byte> capacityBytes = stackalloc byte[8];
        frontEnd.GetConfig(0, capacityBytes);
        ulong capacity = BinaryPrimitives.ReadUInt64LittleEndian(capacityBytes) * Sector;
        ulong span = o.SizeMiB > 0 ? Math.Min(capacity, (ulong)o.SizeMiB << 20) : capacity;
        long blocks = (long)(span / (ulong)o.BlockSize);
        if (blocks < 1)
        {
            throw new ArgumentException($"the device ({capacity} bytes) holds no {o.BlockSize}-byte block");
        }

        bool write = o.Pattern is IoPattern.Write or IoPattern.RandWrite;
        using var ring = new BlkRing(o.QueueDepth, o.BlockSize, write, eventIdx);
        frontEnd.SetMemoryTable(ring.Memory);
        frontEnd.StartVring(0, ring.Setup());
        int? backendPid = o.BackendPid ?? (frontEnd.PeerProcessId > 0 ? frontEnd.PeerProcessId : null);
        log.WriteLine($"# {o.SocketPath}: features 0x{negotiation.Features:x} (EVENT_IDX {(eventIdx ? "on" : "off")}), protocol {negotiation.ProtocolFeatures}, {capacity >> 20} MiB, ring of {ring.QueueSize}, back-end pid {backendPid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"}");

        if (o.Verify)
        {
            Prefill(ring, o, blocks);
        }

        ring.WarmUp();
        var run = new Runner(ring, o, blocks, write);
        double backendBefore = ProcessCpu.Seconds(backendPid);
        TimeSpan ownBefore = Process.GetCurrentProcess().TotalProcessorTime;
        run.Execute();
        TimeSpan ownAfter = Process.GetCurrentProcess().TotalProcessorTime;
        double backendAfter = ProcessCpu.Seconds(backendPid);
        frontEnd.GetVringBase(0);

        double perRequest = run.Completed == 0 ? double.NaN : 1e6 / run.Completed;
        return new BlkResult(
            run.Completed,
            run.ElapsedSeconds,
            o.BlockSize,
            run.Latency.MeanNanoseconds / 1000,
            run.Latency.PercentileNanoseconds(0.50) / 1000,
            run.Latency.PercentileNanoseconds(0.99) / 1000,
            run.Kicks,
            run.Calls,
            (backendAfter - backendBefore) * perRequest,
            (ownAfter - ownBefore).TotalSeconds * perRequest,
            run.AllocatedInLoop,
            run.Errors,
            run.EmptyPolls);
    }

    /// <summary>--verify: writes every block of the region with its pattern first, so any read can be checked.</summary>
    private static void Prefill(BlkRing ring, BlkOptions o, long blocks)
    {
        ring.SetDirection(write: true);
        var fill = new Runner(ring, o with { Pattern = IoPattern.Write, Seconds = 3600 }, blocks, write: true) { StopAfter = blocks };
        fill.Execute();
        if (fill.Errors != 0)
        {
            throw new IOException($"prefill: {fill.Errors} requests failed");
        }

        ring.SetDirection(o.Pattern is IoPattern.Write or IoPattern.RandWrite);
    }

    /// <summary>Fills <paramref name="data"/> with block <paramref name="block"/>'s pattern.</summary>
    internal static void FillPattern(Span<byte> data, long block)
    {
        Span<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        ulong seed = ((ulong)block * 0x9E3779B97F4A7C15ul) | 1;
        for (int i = 0; i < words.Length; i++)
        {
            words[i] = seed + (ulong)i;
        }
    }

    internal static bool CheckPattern(ReadOnlySpan<byte> data, long block)
    {
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        ulong seed = ((ulong)block * 0x9E3779B97F4A7C15ul) | 1;
        for (int i = 0; i < words.Length; i++)
        {
            if (words[i] != seed + (ulong)i)
            {
                return false;
            }
        }

        return true;
    }
}
