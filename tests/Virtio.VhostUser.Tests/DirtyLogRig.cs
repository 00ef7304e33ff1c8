using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using Microsoft.Win32.SafeHandles;
using Virtio.Blk.Backends;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Testing;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;
using Virtio.VhostUser.Tests.FrontEnd;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// A blk server over a real file (io_uring when the kernel has it, else the thread-pool file backend),
/// driven by the library's <see cref="VhostUserFrontEnd"/> with LOG_SHMFD, and a dirty log in a sealed
/// memfd the test reads back page by page.
/// </summary>
internal sealed class DirtyLogRig : IDisposable
{
    /// <summary>The log's bytes: 8192 pages, 32 MiB of guest-physical address (the memory is 16 MiB).</summary>
    public const ulong LogSize = 1024;

    private readonly string _image;
    private readonly bool _ownsFileBackend;

    public DirtyLogRig(IBlockBackend? backend = null, TimeSpan? drainTimeout = null)
    {
        _image = Path.Combine(Path.GetTempPath(), $"dirty-log-{Guid.NewGuid():N}.img");
        using (FileStream file = File.Create(_image))
        {
            file.SetLength(1 << 20);
            file.Write(BlkServerRig.Pattern(8192, 3));
        }

        FileBackend = IoUringBlockBackend.IsSupported(out _) ? new IoUringBlockBackend(_image) : new FileBlockBackend(_image);
        _ownsFileBackend = backend is not null; // else the server rig disposes it
        Server = new BlkServerRig(backend: backend ?? FileBackend);
        if (drainTimeout is TimeSpan timeout)
        {
            Server.Server.DrainTimeout = timeout;
        }

        Client = new BlkFrontEndClient(Server.SocketPath, VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.LogSharedMemory | VhostUserProtocolFeatures.MultiQueue);
        Client.Start();
        Log = TestMemfd.Create(LogSize, TestMemfd.QemuSeals, "dirty-log-test");
    }

    public IBlockBackend FileBackend { get; }

    public BlkServerRig Server { get; }

    /// <summary>The front end: the library's <see cref="VhostUserFrontEnd"/> with one blk ring.</summary>
    public BlkFrontEndClient Client { get; }

    public GuestDriver Driver => Client.Driver;

    public VhostUserFrontEnd FrontEnd => Client.FrontEnd;

    public VhostUserNegotiation Negotiation => Client.Negotiation;

    public SafeFileHandle Log { get; }

    /// <summary>The guest page of the used ring (the ring area is laid out within one page).</summary>
    public ulong UsedRingPage => Driver.UsedRing.Value >> 12;

    /// <summary>QEMU's order at a migration's start: SET_LOG_BASE, SET_FEATURES with LOG_ALL, SET_VRING_ADDR with VHOST_VRING_F_LOG.</summary>
    public void StartLogging(GuestAddress? usedRingLog = null, SafeFileHandle? log = null)
    {
        FrontEnd.SetLogBase(log ?? Log, LogSize, 0);
        FrontEnd.SetFeatures(Negotiation.Features | VhostUserFrontEnd.LogAllBit);
        FrontEnd.SetVringAddress(0, Driver.DescriptorTable, Driver.AvailRing, Driver.UsedRing, usedRingLog ?? Driver.UsedRing);
    }

    /// <summary>And at its end (or cancel): LOG_ALL and the ring's flag cleared.</summary>
    public void StopLogging()
    {
        FrontEnd.SetFeatures(Negotiation.Features);
        FrontEnd.SetVringAddress(0, Driver.DescriptorTable, Driver.AvailRing, Driver.UsedRing);
    }

    /// <summary>The pages whose bit is set in <paramref name="log"/> (the rig's by default), in order.</summary>
    public SortedSet<ulong> MarkedPages(SafeFileHandle? log = null) => MarkedPagesIn(log ?? Log);

    /// <summary>The pages whose bit is set in a log of <see cref="LogSize"/> bytes, in order.</summary>
    public static SortedSet<ulong> MarkedPagesIn(SafeFileHandle log)
    {
        byte[] bitmap = new byte[LogSize];
        Assert.Equal((int)LogSize, RandomAccess.Read(log, bitmap, 0));
        var pages = new SortedSet<ulong>();
        for (int b = 0; b < bitmap.Length; b++)
        {
            for (int bit = 0; bit < 8; bit++)
            {
                if ((bitmap[b] & (1 << bit)) != 0)
                {
                    pages.Add(((ulong)b * 8) + (ulong)bit);
                }
            }
        }

        return pages;
    }

    /// <summary>Clears the log, as QEMU does when it syncs.</summary>
    public void ClearLog(SafeFileHandle? log = null) => RandomAccess.Write(log ?? Log, new byte[LogSize], 0);

    /// <summary>Posts one request; returns its head and its buffers.</summary>
    public (ushort Head, IReadOnlyList<(GuestAddress Address, int Length, bool Writable)> Buffers) Post(uint type, ulong sector, byte[]? writeData = null, int readLength = 0) =>
        Client.Post(type, sector, writeData, readLength);

    /// <summary>Waits (bounded) for <paramref name="head"/> on the used ring; returns its status byte.</summary>
    public byte WaitUsed(ushort head, IReadOnlyList<(GuestAddress Address, int Length, bool Writable)> buffers) => Client.WaitUsed(head, buffers);

    /// <summary>The pages [address, address + length) touches.</summary>
    public static IEnumerable<ulong> Pages(GuestAddress address, int length)
    {
        for (ulong page = address.Value >> 12; page <= (address.Value + (ulong)length - 1) >> 12; page++)
        {
            yield return page;
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        Server.Dispose();
        Log.Dispose();
        if (_ownsFileBackend)
        {
            (FileBackend as IDisposable)?.Dispose();
        }

        File.Delete(_image);
    }
}
