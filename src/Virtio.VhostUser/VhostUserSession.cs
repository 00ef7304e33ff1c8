using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// One front-end connection: reads and validates each message, applies it to the device, answers.
/// Everything here runs on the connection's thread. A message that breaks the protocol throws
/// <see cref="VhostUserProtocolException"/>; the server logs it and closes the connection, and
/// <see cref="Dispose"/> stops the rings (waiting for in-flight requests) and unmaps the memory,
/// leaving the device's negotiated state for the next connection.
/// </summary>
internal sealed class VhostUserSession : IDisposable
{
    /// <summary>VHOST_USER_F_PROTOCOL_FEATURES, a virtio feature bit borrowed by the protocol.</summary>
    public const ulong ProtocolFeaturesBit = 1ul << 30;

    /// <summary>How many memory regions ADD_MEM_REG may build up (GET_MAX_MEM_SLOTS).</summary>
    public const int MaxMemSlots = 32;

    private const int MemTableMaxRegions = 8;
    private const int RegionSize = 32;
    private const int ConfigHeaderSize = 12;
    private const int MaxConfigSize = 256;
    private const ulong VringIndexMask = 0xff;
    private const ulong VringNoFdFlag = 0x100;
    private const uint VringFlagLog = 0x1;
    private const ushort NetDeviceId = 1;
    private const int InflightPayloadSize = 24;

    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(30);

    private readonly VirtioDevice _device;
    private readonly VhostUserMemory _memory;
    private readonly VhostUserGuestNotifier _notifier;
    private readonly UnixMessageChannel _channel;
    private readonly ILogger _logger;
    private readonly VhostUserVring[] _vrings;
    private readonly VhostUserMessage _message = new();
    private VhostUserProtocolFeatures _protocolFeatures;
    private InflightRegion? _inflight;
    private bool _featuresAcked;
    private bool _protocolFeaturesBitAcked;

    public VhostUserSession(VirtioDevice device, VhostUserMemory memory, VhostUserGuestNotifier notifier, IReadOnlyList<IoThread> ioThreads, UnixMessageChannel channel, ILogger logger)
    {
        _device = device;
        _memory = memory;
        _notifier = notifier;
        _channel = channel;
        _logger = logger;
        _vrings = new VhostUserVring[device.Queues.Count];
        for (int i = 0; i < _vrings.Length; i++)
        {
            _vrings[i] = new VhostUserVring(device, (ushort)i, ioThreads[i % ioThreads.Count]);
        }
    }

    /// <summary>Serves messages until the front end closes the connection. Throws on a protocol error.</summary>
    public void Run()
    {
        try
        {
            while (_channel.TryReceive(_message))
            {
                Log.Request(_logger, _message.Request, _message.Size, _message.FdCount, _message.Flags);
                Handle(_message);
            }
        }
        finally
        {
            _message.ClearFds();
        }
    }

    private void Handle(VhostUserMessage m)
    {
        bool replied = false;
        switch (m.Request)
        {
            case VhostUserRequest.GetFeatures:
                Expect(m, 0, 0);
                _channel.SendReply(m.Request, _device.DeviceFeatures | ProtocolFeaturesBit);
                replied = true;
                break;
            case VhostUserRequest.SetFeatures:
                Expect(m, 8, 0);
                SetFeatures(m.ReadUInt64(0));
                break;
            case VhostUserRequest.GetProtocolFeatures:
                Expect(m, 0, 0);
                _channel.SendReply(m.Request, (ulong)OfferedProtocolFeatures);
                replied = true;
                break;
            case VhostUserRequest.SetProtocolFeatures:
                Expect(m, 8, 0);
                ulong requested = m.ReadUInt64(0);
                if ((requested & ~(ulong)OfferedProtocolFeatures) != 0)
                {
                    throw Error($"SET_PROTOCOL_FEATURES asks for 0x{requested:x}, only 0x{(ulong)OfferedProtocolFeatures:x} offered");
                }

                _protocolFeatures = (VhostUserProtocolFeatures)requested;
                break;
            case VhostUserRequest.SetOwner:
                Expect(m, 0, 0);
                break;
            case VhostUserRequest.ResetOwner:
                Expect(m, 0, 0);
                StopAllRings();
                _device.Reset();
                _featuresAcked = false;
                break;
            case VhostUserRequest.GetQueueNum:
                Expect(m, 0, 0);
                _channel.SendReply(m.Request, (ulong)_vrings.Length);
                replied = true;
                break;
            case VhostUserRequest.GetMaxMemSlots:
                Expect(m, 0, 0);
                _channel.SendReply(m.Request, MaxMemSlots);
                replied = true;
                break;
            case VhostUserRequest.SetMemTable:
                SetMemTable(m);
                break;
            case VhostUserRequest.AddMemReg:
                Expect(m, 8 + RegionSize, 1);
                AddMemRegion(m);
                break;
            case VhostUserRequest.RemMemReg:
                Expect(m, 8 + RegionSize, m.FdCount is 1 ? 1 : 0);
                RemoveMemRegion(m);
                break;
            case VhostUserRequest.SetVringNum:
                Expect(m, 8, 0);
                SetVringNum(Vring(m.ReadUInt32(0)), m.ReadUInt32(4));
                break;
            case VhostUserRequest.SetVringAddr:
                Expect(m, 40, 0);
                SetVringAddr(Vring(m.ReadUInt32(0)), m);
                break;
            case VhostUserRequest.SetVringBase:
                Expect(m, 8, 0);
                SetVringBase(Vring(m.ReadUInt32(0)), m.ReadUInt32(4));
                break;
            case VhostUserRequest.GetVringBase:
                Expect(m, 8, 0);
                VhostUserVring stopped = Vring(m.ReadUInt32(0));
                StopRing(stopped);
                stopped.SetKick(null);
                Span<byte> state = stackalloc byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(state, stopped.Index);
                BinaryPrimitives.WriteUInt32LittleEndian(state[4..], stopped.Base);
                _channel.SendReply(m.Request, state);
                replied = true;
                break;
            case VhostUserRequest.SetVringKick:
            case VhostUserRequest.SetVringCall:
            case VhostUserRequest.SetVringErr:
                SetVringFd(m);
                break;
            case VhostUserRequest.SetVringEnable:
                Expect(m, 8, 0);
                SetVringEnable(Vring(m.ReadUInt32(0)), m.ReadUInt32(4));
                break;
            case VhostUserRequest.GetInflightFd:
                GetInflightFd(m);
                replied = true;
                break;
            case VhostUserRequest.SetInflightFd:
                SetInflightFd(m);
                break;
            case VhostUserRequest.GetConfig:
                ConfigAccess(m, out int offset, out int size);
                Span<byte> reply = stackalloc byte[ConfigHeaderSize + size];
                m.PayloadSpan[..ConfigHeaderSize].CopyTo(reply);
                _device.ReadConfig(offset, reply[ConfigHeaderSize..]);
                _channel.SendReply(m.Request, reply);
                replied = true;
                break;
            case VhostUserRequest.SetConfig:
                ConfigAccess(m, out int writeOffset, out int writeSize);
                _device.WriteConfig(writeOffset, m.PayloadSpan.Slice(ConfigHeaderSize, writeSize));
                break;
            default:
                throw Error($"unsupported request {(uint)m.Request} ({m.Request})");
        }

        if (!replied && m.NeedsReply && (_protocolFeatures & VhostUserProtocolFeatures.ReplyAck) != 0)
        {
            _channel.SendReply(m.Request, 0ul);
        }
    }

    /// <summary>
    /// What GET_PROTOCOL_FEATURES offers. A net front end keeps the configuration space itself
    /// (MAC, status, MTU) and warns about CONFIG, so it is left out for device ID 1.
    /// </summary>
    private VhostUserProtocolFeatures OfferedProtocolFeatures =>
        _device.DeviceId == NetDeviceId ? VhostUserProtocolFeatures.Supported & ~VhostUserProtocolFeatures.Config : VhostUserProtocolFeatures.Supported;

    private static VhostUserProtocolException Error(string reason) => new(reason);

    private static void Expect(VhostUserMessage m, int payloadSize, int fds)
    {
        if (m.Size != payloadSize)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected {payloadSize}");
        }

        ExpectFds(m, fds);
    }

    private static void ExpectFds(VhostUserMessage m, int fds)
    {
        if (m.FdCount != fds)
        {
            throw Error($"{m.Request}: {m.FdCount} file descriptor(s), expected {fds}");
        }
    }

    private VhostUserVring Vring(uint index)
    {
        if (index >= (uint)_vrings.Length)
        {
            throw Error($"{_message.Request}: ring index {index} out of range (the device has {_vrings.Length})");
        }

        return _vrings[index];
    }

    private void SetFeatures(ulong features)
    {
        ulong offered = _device.DeviceFeatures | ProtocolFeaturesBit;
        if ((features & ~offered) != 0)
        {
            throw Error($"SET_FEATURES asks for 0x{features:x}, outside the offered 0x{offered:x}");
        }

        _protocolFeaturesBitAcked = (features & ProtocolFeaturesBit) != 0;
        ulong virtio = features & ~ProtocolFeaturesBit;
        bool same = _device.IsLive && _device.DriverFeatures == virtio;
        if (!same)
        {
            // New features mean a new driver: the device starts over (a reconnecting front end
            // sends the same features and keeps the device's state).
            StopAllRings();
            _device.Reset();
            _device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver);
            _device.WriteDriverFeatures(virtio);
            _device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
            if ((_device.Status & DeviceStatus.FeaturesOk) == 0)
            {
                throw Error($"SET_FEATURES: the device refused features 0x{virtio:x}");
            }

            _device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk);
        }

        _featuresAcked = true;
        Log.FeaturesNegotiated(_logger, virtio, (ulong)_protocolFeatures);
        foreach (VhostUserVring vring in _vrings)
        {
            TryStart(vring);
        }
    }

    private void SetMemTable(VhostUserMessage m)
    {
        if (m.Size < 8)
        {
            throw Error($"SET_MEM_TABLE: payload of {m.Size} bytes, shorter than its 8-byte header");
        }

        uint count = m.ReadUInt32(0);
        if (count == 0)
        {
            throw Error("SET_MEM_TABLE with no regions: the front end shares no memory (QEMU needs a memory backend with share=on)");
        }

        if (count > MemTableMaxRegions)
        {
            throw Error($"SET_MEM_TABLE: {count} regions, at most {MemTableMaxRegions}");
        }

        Expect(m, 8 + (RegionSize * (int)count), (int)count);
        var regions = new VhostUserMemoryRegion[count];
        try
        {
            for (int i = 0; i < regions.Length; i++)
            {
                regions[i] = MapRegion(m, 8 + (RegionSize * i), i, regions.AsSpan(0, i));
            }
        }
        catch
        {
            DisposeMappings(regions);
            throw;
        }

        ReplaceMemory(regions);
    }

    private void AddMemRegion(VhostUserMessage m)
    {
        IReadOnlyList<VhostUserMemoryRegion> current = _memory.Regions;
        if (current.Count >= MaxMemSlots)
        {
            throw Error($"ADD_MEM_REG: all {MaxMemSlots} memory slots are in use");
        }

        var existing = new VhostUserMemoryRegion[current.Count];
        for (int i = 0; i < existing.Length; i++)
        {
            existing[i] = current[i];
        }

        VhostUserMemoryRegion added = MapRegion(m, 8, 0, existing);
        var regions = new VhostUserMemoryRegion[existing.Length + 1];
        existing.CopyTo(regions, 0);
        regions[^1] = added;
        ReplaceMemory(regions);
    }

    private void RemoveMemRegion(VhostUserMessage m)
    {
        ulong guest = m.ReadUInt64(8);
        ulong size = m.ReadUInt64(16);
        ulong user = m.ReadUInt64(24);
        IReadOnlyList<VhostUserMemoryRegion> current = _memory.Regions;
        var kept = new List<VhostUserMemoryRegion>(current.Count);
        bool found = false;
        foreach (VhostUserMemoryRegion region in current)
        {
            if (!found && region.GuestAddress == guest && region.Size == size && region.UserAddress == user)
            {
                found = true;
                continue;
            }

            kept.Add(region);
        }

        if (!found)
        {
            throw Error($"REM_MEM_REG: no region at guest 0x{guest:x} of 0x{size:x} bytes (user 0x{user:x})");
        }

        ReplaceMemory(kept.ToArray());
    }

    /// <summary>Checks one region description against the file it maps and the other regions, then maps it.</summary>
    private static VhostUserMemoryRegion MapRegion(VhostUserMessage m, int offset, int fdIndex, ReadOnlySpan<VhostUserMemoryRegion> others)
    {
        ulong guest = m.ReadUInt64(offset);
        ulong size = m.ReadUInt64(offset + 8);
        ulong user = m.ReadUInt64(offset + 16);
        ulong mmapOffset = m.ReadUInt64(offset + 24);
        ulong page = (ulong)Environment.SystemPageSize;
        string where = $"{m.Request}: region {fdIndex} (guest 0x{guest:x}, size 0x{size:x}, user 0x{user:x}, offset 0x{mmapOffset:x})";
        if (size == 0 || size % page != 0 || guest % page != 0 || mmapOffset % page != 0)
        {
            throw Error($"{where}: size, guest address and offset must be non-zero page multiples");
        }

        if (guest + size < guest || user + size < user || mmapOffset + size < mmapOffset)
        {
            throw Error($"{where}: wraps around the 64-bit address space");
        }

        foreach (VhostUserMemoryRegion other in others)
        {
            if (other.GuestOverlaps(guest, size))
            {
                throw Error($"{where}: overlaps the region at guest 0x{other.GuestAddress:x} (0x{other.Size:x} bytes)");
            }

            if (other.UserOverlaps(user, size))
            {
                throw Error($"{where}: its user addresses overlap the region at user 0x{other.UserAddress:x}");
            }
        }

        SafeFileHandle fd = m.TakeFd(fdIndex);
        try
        {
            long fileSize = FileSize(fd);
            if (fileSize < 0 || (ulong)fileSize < mmapOffset + size)
            {
                // Mapping past the end of the file would succeed and then fault on first access.
                throw Error($"{where}: the file is {fileSize} bytes, shorter than offset + size");
            }

            int dup = LibC.fcntl((int)fd.DangerousGetHandle(), LibC.F_DUPFD_CLOEXEC, 0);
            if (dup < 0)
            {
                throw Error($"{where}: cannot duplicate the fd (errno {LibC.errno})");
            }

            GuestMemoryRegion mapping;
            try
            {
                mapping = GuestMemoryRegion.MapFileDescriptor(new GuestAddress(guest), size, dup, mmapOffset);
            }
            catch (System.IO.IOException exception)
            {
                throw new VhostUserProtocolException($"{where}: mmap failed ({exception.Message})", exception);
            }

            return new VhostUserMemoryRegion(guest, size, user, mmapOffset, mapping);
        }
        finally
        {
            fd.Dispose();
        }
    }

    private static unsafe long FileSize(SafeFileHandle fd)
    {
        stat st;
        // SAFETY: st is a local the kernel fills; the SafeFileHandle keeps the fd open.
        return LibC.fstat((int)fd.DangerousGetHandle(), &st) == 0 ? (long)st.st_size : -1;
    }

    private void ReplaceMemory(VhostUserMemoryRegion[] regions)
    {
        // Nothing may touch the old mappings once they are gone: stop the rings that run (their
        // in-flight requests finish first), swap, unmap what left, start them again.
        var wasStarted = new List<VhostUserVring>();
        foreach (VhostUserVring vring in _vrings)
        {
            if (vring.Started)
            {
                wasStarted.Add(vring);
                StopRing(vring);
            }
        }

        IReadOnlyList<VhostUserMemoryRegion> old = _memory.Regions;
        _memory.Replace(regions);
        foreach (VhostUserMemoryRegion region in old)
        {
            if (Array.IndexOf(regions, region) < 0)
            {
                region.Mapping.Dispose();
            }
        }

        ulong bytes = 0;
        foreach (VhostUserMemoryRegion region in regions)
        {
            bytes += region.Size;
        }

        Log.MemoryTable(_logger, regions.Length, bytes);
        foreach (VhostUserVring vring in wasStarted)
        {
            TryStart(vring);
        }
    }

    private static void DisposeMappings(VhostUserMemoryRegion?[] regions)
    {
        foreach (VhostUserMemoryRegion? region in regions)
        {
            region?.Mapping.Dispose();
        }
    }

    private void SetVringNum(VhostUserVring vring, uint num)
    {
        ushort max = _device.Queues[vring.Index].MaxSize;
        if (num == 0 || num > max || (num & (num - 1)) != 0)
        {
            throw Error($"SET_VRING_NUM: ring {vring.Index} size {num} is not a power of two in 1..{max}");
        }

        RequireStopped(vring);
        vring.Num = (ushort)num;
    }

    private void SetVringAddr(VhostUserVring vring, VhostUserMessage m)
    {
        RequireStopped(vring);
        uint flags = m.ReadUInt32(4);
        if ((flags & ~VringFlagLog) != 0)
        {
            throw Error($"SET_VRING_ADDR: ring {vring.Index} has unknown flags 0x{flags:x}");
        }

        var layout = new SplitRingLayout(vring.Num);
        vring.DescriptorTable = Translate(vring, "descriptor table", m.ReadUInt64(8), (ulong)layout.DescriptorTableSize);
        vring.UsedRing = Translate(vring, "used ring", m.ReadUInt64(16), (ulong)layout.UsedRingSize);
        vring.AvailRing = Translate(vring, "available ring", m.ReadUInt64(24), (ulong)layout.AvailRingSize);
        vring.HasAddresses = true;
    }

    private ulong Translate(VhostUserVring vring, string what, ulong user, ulong length)
    {
        if (!_memory.TryTranslateUserAddress(user, length, out ulong guest))
        {
            throw Error($"SET_VRING_ADDR: ring {vring.Index} {what} at user address 0x{user:x} (0x{length:x} bytes) is outside the shared memory");
        }

        return guest;
    }

    private void SetVringBase(VhostUserVring vring, uint value)
    {
        if (value > ushort.MaxValue)
        {
            throw Error($"SET_VRING_BASE: ring {vring.Index} base {value} is over 65535 (split rings)");
        }

        RequireStopped(vring);
        vring.Base = (ushort)value;
    }

    private void SetVringFd(VhostUserMessage m)
    {
        if (m.Size != 8)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected 8");
        }

        ulong value = m.ReadUInt64(0);
        if ((value & ~(VringIndexMask | VringNoFdFlag)) != 0)
        {
            throw Error($"{m.Request}: unknown bits in 0x{value:x}");
        }

        bool noFd = (value & VringNoFdFlag) != 0;
        ExpectFds(m, noFd ? 0 : 1);
        VhostUserVring vring = Vring((uint)(value & VringIndexMask));
        if (!noFd && !FdKind.IsEventFd(m.PeekFd(0)))
        {
            // Anything else (a pipe, a file) could stay readable without a counter to consume
            // and keep the I/O thread spinning.
            throw Error($"{m.Request}: ring {vring.Index}: the fd is not an eventfd");
        }

        EventFd? fd = noFd ? null : EventFd.FromOwnedHandle(TakeRawFd(m));
        switch (m.Request)
        {
            case VhostUserRequest.SetVringKick:
                if (fd is null)
                {
                    throw Error($"SET_VRING_KICK: ring {vring.Index} without a kick fd (polling mode) is not supported");
                }

                StopRing(vring);
                vring.SetKick(fd);
                TryStart(vring);
                break;
            case VhostUserRequest.SetVringCall:
                EventFdGuestNotifier? old = vring.Call;
                vring.Call = fd is null ? null : new EventFdGuestNotifier(fd);
                _notifier.SetCall(vring.Index, vring.Call);
                if (old is not null)
                {
                    // A completion on another thread may still hold the old notifier: let it
                    // finish its write before the fd goes (the I/O thread's next turn is enough).
                    vring.IoThread.Schedule(static state => ((EventFd)state!).Dispose(), old.EventFd);
                }

                break;
            default:
                vring.Error?.Dispose();
                vring.Error = fd;
                break;
        }
    }

    private static int TakeRawFd(VhostUserMessage m)
    {
        SafeFileHandle handle = m.TakeFd(0);
        int fd = (int)handle.DangerousGetHandle();
        handle.SetHandleAsInvalid();
        return fd;
    }

    private void SetVringEnable(VhostUserVring vring, uint enable)
    {
        if (enable > 1)
        {
            throw Error($"SET_VRING_ENABLE: ring {vring.Index} value {enable}, expected 0 or 1");
        }

        vring.Enabled = enable == 1;
        if (vring.Enabled)
        {
            TryStart(vring);
        }
        else
        {
            StopRing(vring);
        }
    }

    private void InflightGeometry(VhostUserMessage m, int fds, out ushort queueCount, out ushort queueSize)
    {
        if (m.Size is not (InflightPayloadSize or InflightPayloadSize - 4))
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected {InflightPayloadSize}");
        }

        ExpectFds(m, fds);
        queueCount = BinaryPrimitives.ReadUInt16LittleEndian(m.Payload.AsSpan(16));
        queueSize = BinaryPrimitives.ReadUInt16LittleEndian(m.Payload.AsSpan(18));
        if (queueCount == 0 || queueCount > _vrings.Length)
        {
            throw Error($"{m.Request}: {queueCount} queues, the device has {_vrings.Length}");
        }

        if (queueSize == 0 || queueSize > SplitVirtqueue.MaxQueueSize || (queueSize & (queueSize - 1)) != 0)
        {
            throw Error($"{m.Request}: queue size {queueSize} is not a power of two up to {SplitVirtqueue.MaxQueueSize}");
        }

        foreach (VhostUserVring vring in _vrings)
        {
            RequireStopped(vring);
        }

        // The front end's queue_size is its configured ring size, but the driver may choose a
        // larger ring (QEMU 7.2 with virtio-mmio: queue-size 128, rings of 1024). The region is
        // ours to lay out: it has room for the largest ring the device accepts.
        foreach (SplitVirtqueue queue in _device.Queues)
        {
            queueSize = Math.Max(queueSize, queue.MaxSize);
        }
    }

    private void GetInflightFd(VhostUserMessage m)
    {
        InflightGeometry(m, 0, out ushort queueCount, out ushort queueSize);
        InflightRegion region = InflightRegion.Create(queueCount, queueSize);
        _inflight?.Dispose();
        _inflight = region;
        Log.InflightRegion(_logger, "created", queueCount, queueSize);
        Span<byte> reply = stackalloc byte[InflightPayloadSize];
        reply.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(reply, region.Size);
        BinaryPrimitives.WriteUInt16LittleEndian(reply[16..], queueCount);
        BinaryPrimitives.WriteUInt16LittleEndian(reply[18..], queueSize);
        _channel.SendReply(m.Request, reply, region.Fd);
    }

    private void SetInflightFd(VhostUserMessage m)
    {
        InflightGeometry(m, 1, out ushort queueCount, out ushort queueSize);
        ulong size = m.ReadUInt64(0);
        ulong offset = m.ReadUInt64(8);
        ulong expected = InflightRegion.QueueRegionSize(queueSize) * queueCount;
        if (size != expected || offset % (ulong)Environment.SystemPageSize != 0)
        {
            throw Error($"SET_INFLIGHT_FD: mmap size {size} at offset {offset}, expected {expected} bytes at a page-aligned offset");
        }

        SafeFileHandle fd = m.TakeFd(0);
        long fileSize = FileSize(fd);
        if (fileSize < 0 || (ulong)fileSize < offset + size)
        {
            fd.Dispose();
            throw Error($"SET_INFLIGHT_FD: the file is {fileSize} bytes, shorter than offset + size");
        }

        InflightRegion region;
        try
        {
            region = InflightRegion.Map(fd, offset, size, queueCount, queueSize);
        }
        catch (System.IO.IOException exception)
        {
            throw new VhostUserProtocolException($"SET_INFLIGHT_FD: {exception.Message}", exception);
        }

        _inflight?.Dispose();
        _inflight = region;
        Log.InflightRegion(_logger, "received", queueCount, queueSize);
    }

    private static void ConfigAccess(VhostUserMessage m, out int offset, out int size)
    {
        ExpectFds(m, 0);
        if (m.Size < ConfigHeaderSize)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, shorter than the {ConfigHeaderSize}-byte config header");
        }

        uint rawOffset = m.ReadUInt32(0);
        uint rawSize = m.ReadUInt32(4);
        if (rawSize > MaxConfigSize || rawOffset > MaxConfigSize - rawSize)
        {
            throw Error($"{m.Request}: offset {rawOffset} size {rawSize} is outside the {MaxConfigSize}-byte config space");
        }

        if (m.Size != ConfigHeaderSize + (int)rawSize)
        {
            throw Error($"{m.Request}: payload of {m.Size} bytes, expected {ConfigHeaderSize + rawSize} for a {rawSize}-byte access");
        }

        offset = (int)rawOffset;
        size = (int)rawSize;
    }

    private void RequireStopped(VhostUserVring vring)
    {
        if (vring.Started)
        {
            throw Error($"{_message.Request}: ring {vring.Index} is running (stop it with GET_VRING_BASE first)");
        }
    }

    /// <summary>Starts the ring when it has everything it needs and is enabled.</summary>
    private void TryStart(VhostUserVring vring)
    {
        bool enabled = vring.Enabled || !_protocolFeaturesBitAcked;
        if (vring.Started || vring.Kick is null || !enabled || !_featuresAcked || !vring.HasAddresses || !_device.IsLive)
        {
            return;
        }

        var layout = new SplitRingLayout(vring.Num);
        RequireInMemory(vring, "descriptor table", vring.DescriptorTable, (uint)layout.DescriptorTableSize);
        RequireInMemory(vring, "available ring", vring.AvailRing, (uint)layout.AvailRingSize);
        RequireInMemory(vring, "used ring", vring.UsedRing, (uint)layout.UsedRingSize);
        if (!_memory.TryReadUInt16(new GuestAddress(vring.UsedRing + 2), out ushort usedIdx))
        {
            throw Error($"ring {vring.Index}: used ring unreadable");
        }

        SplitVirtqueue queue = _device.Queues[vring.Index];
        ushort startAt = vring.Base;
        ushort[] resubmit = [];
        InflightTracker? tracker = null;
        InflightRegion? region = _inflight;
        if (region is not null && (vring.Index >= region.QueueCount || vring.Num > region.QueueSize))
        {
            Log.RingNotTracked(_logger, vring.Index, vring.Num, region.QueueCount, region.QueueSize);
        }
        else if (region is not null)
        {
            tracker = new InflightTracker(region, vring.Index);
            resubmit = tracker.Recover(usedIdx);
            if (resubmit.Length > 0)
            {
                // A back end died with these popped and not completed: they go first, then the
                // ring continues after them (used idx + in flight = where that back end was).
                startAt = (ushort)(usedIdx + resubmit.Length);
                Log.Resubmitting(_logger, vring.Index, resubmit.Length, usedIdx);
            }
        }

        var state = new SplitVirtqueueState(vring.Num, new GuestAddress(vring.DescriptorTable), new GuestAddress(vring.AvailRing), new GuestAddress(vring.UsedRing), startAt, usedIdx, Ready: false, EventIdx: false, IndirectDescriptors: false);
        if (!queue.TryRestoreState(state, out QueueError error) || !_device.ActivateQueue(vring.Index))
        {
            throw Error($"ring {vring.Index}: the device could not start it ({(error != QueueError.None ? error : queue.Error)})");
        }

        // Nothing processes the ring until StartServing: the tracker and the resubmitted heads are in
        // place before its first pop. Heads the region names wrongly break the queue (DEVICE_NEEDS_RESET).
        queue.InFlightTracker = tracker;
        if (resubmit.Length > 0 && !queue.TryResubmit(resubmit, out QueueError resubmitError))
        {
            Log.ResubmitRefused(_logger, vring.Index, resubmitError);
        }

        vring.StartServing();
        Log.RingStarted(_logger, vring.Index, vring.Num, startAt, usedIdx);

        // Look at the ring once: resubmitted requests, and buffers the driver made available while
        // no back end listened, get no kick of their own.
        vring.Kick!.Signal();
    }

    private void RequireInMemory(VhostUserVring vring, string what, ulong guest, uint length)
    {
        if (!_memory.TryGetSpan(new GuestAddress(guest), (int)length, out _))
        {
            throw Error($"ring {vring.Index}: {what} at guest 0x{guest:x} (0x{length:x} bytes) is outside the shared memory");
        }
    }

    /// <summary>
    /// Stops the ring: no more kicks served, in-flight requests finished (their completions reach
    /// the used ring), queue deactivated. Its next available index becomes the ring's base.
    /// </summary>
    private void StopRing(VhostUserVring vring)
    {
        if (!vring.Started)
        {
            return;
        }

        vring.StopServing();
        SplitVirtqueue queue = _device.Queues[vring.Index];
        long deadline = Environment.TickCount64 + (long)s_drainTimeout.TotalMilliseconds;
        // Wait until every request is returned AND published: a completion leaves InFlightCount at
        // AddUsed, but used->idx moves only at the end of the deferred-call section it ran in (on the
        // I/O thread or a backend thread). Deactivating in between would refuse that publish, and the
        // request would be neither in flight nor visible to the driver: lost across the reconnect.
        while (!IsDrained(queue) && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(1);
        }

        if (!IsDrained(queue))
        {
            Log.StopTimedOut(_logger, vring.Index, queue.InFlightCount, s_drainTimeout);
        }

        _device.DeactivateQueue(vring.Index);
        vring.Base = queue.NextAvail;
        if (queue.InFlightTracker is InflightTracker tracker)
        {
            queue.InFlightTracker = null;
            if (queue.InFlightCount == 0 && _memory.TryReadUInt16(new GuestAddress(vring.UsedRing + 2), out ushort usedIdx))
            {
                tracker.Stopped(usedIdx);
            }
        }
        Log.RingStopped(_logger, vring.Index, vring.Base);
    }

    private static bool IsDrained(SplitVirtqueue queue) =>
        queue.Error != QueueError.None || (queue.InFlightCount == 0 && queue.PublishedUsed == queue.NextUsed);

    private void StopAllRings()
    {
        foreach (VhostUserVring vring in _vrings)
        {
            StopRing(vring);
        }
    }

    /// <summary>Stops every ring, closes the connection's fds and unmaps its memory. The device keeps its state.</summary>
    public void Dispose()
    {
        StopAllRings();
        foreach (VhostUserVring vring in _vrings)
        {
            _notifier.SetCall(vring.Index, null);
            vring.DisposeFds();
        }

        IReadOnlyList<VhostUserMemoryRegion> old = _memory.Regions;
        _memory.Replace([]);
        foreach (VhostUserMemoryRegion region in old)
        {
            region.Mapping.Dispose();
        }

        _inflight?.Dispose();
        _inflight = null;

        _message.ClearFds();
    }
}
