using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// One front-end connection: reads each message, has <see cref="VhostUserPayloadDecoder"/> turn
/// its payload into a typed one, hands that to the part that owns the state (the features to
/// <see cref="FeatureNegotiation"/>, the memory to <see cref="VhostUserMemoryTable"/>, the rings to
/// <see cref="VringRunner"/>, the configuration space to the device), and answers. Everything here
/// runs on the connection's thread. A message that breaks the protocol throws
/// <see cref="VhostUserProtocolException"/>; the server logs it and closes the connection, and
/// <see cref="Dispose"/> stops the rings (waiting for in-flight requests) and unmaps the memory,
/// leaving the device's negotiated state for the next connection.
/// </summary>
internal sealed class VhostUserSession : IDisposable
{
    private readonly VirtioDevice _device;
    private readonly UnixMessageChannel _channel;
    private readonly ILogger _logger;
    private readonly VhostUserMessage _message = new();
    private readonly FeatureNegotiation _features;
    private readonly VhostUserMemoryTable _memoryTable;
    private readonly VringRunner _rings;
    private readonly VhostUserSessionOptions _options;
    private readonly VhostUserGuestNotifier _notifier;
    private readonly DirtyLogRequests _dirtyLog;
    private readonly DeviceLifecycle _lifecycle;
    private BackendChannel? _backendChannel;

    public VhostUserSession(VirtioDevice device, VhostUserMemory memory, VhostUserGuestNotifier notifier, IReadOnlyList<IoThread> ioThreads, UnixMessageChannel channel, VhostUserSessionOptions options, ILogger logger)
    {
        _device = device;
        _channel = channel;
        _logger = logger;
        _options = options;
        _notifier = notifier;
        _features = new FeatureNegotiation(device);
        _memoryTable = new VhostUserMemoryTable(memory, logger, options.MaxMemoryBytes, options.AllowUnsealedMemory);
        _rings = new VringRunner(device, memory, _features, notifier, ioThreads, options.DrainTimeout, logger);
        _dirtyLog = new DirtyLogRequests(_rings, _features, options.AllowUnsealedMemory, logger);
        _lifecycle = new DeviceLifecycle(device, _features, _rings, logger);
    }

    /// <summary>Serves messages until the front end closes the connection. Throws on a protocol error.</summary>
    public void Run()
    {
        try
        {
            while (_channel.TryReceive(_message))
            {
                Log.Request(_logger, _message.Request, _message.Size, _message.FdCount, _message.Flags);
                Dispatch(_message);
            }
        }
        finally
        {
            _message.ClearFds();
        }
    }

    /// <summary>Request to handler. Each case decodes the payload, then acts; true when it sent its own reply.</summary>
    private bool Handle(VhostUserMessage m)
    {
        switch (m.Request)
        {
            case VhostUserRequest.GetFeatures:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _channel.SendReply(m.Request, _features.OfferedFeatures);
                return true;
            case VhostUserRequest.SetFeatures:
                SetFeatures(VhostUserPayloadDecoder.ReadUInt64(m));
                return false;
            case VhostUserRequest.GetProtocolFeatures:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _channel.SendReply(m.Request, (ulong)_features.OfferedProtocolFeatures);
                return true;
            case VhostUserRequest.SetProtocolFeatures:
                _features.SetProtocolFeatures(VhostUserPayloadDecoder.ReadUInt64(m));
                return false;
            case VhostUserRequest.SetOwner:
                VhostUserPayloadDecoder.ReadEmpty(m);
                return false;
            case VhostUserRequest.ResetOwner:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _lifecycle.Stop(m.Request);
                return false;
            case VhostUserRequest.ResetDevice:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _lifecycle.ResetDevice();
                return false;
            case VhostUserRequest.SetStatus:
                _lifecycle.SetStatus(VhostUserPayloadDecoder.ReadUInt64(m));
                return false;
            case VhostUserRequest.GetStatus:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _channel.SendReply(m.Request, _lifecycle.GetStatus());
                return true;
            case VhostUserRequest.GetQueueNum:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _channel.SendReply(m.Request, (ulong)_rings.Count);
                return true;
            case VhostUserRequest.GetMaxMemSlots:
                VhostUserPayloadDecoder.ReadEmpty(m);
                _channel.SendReply(m.Request, VhostUserMemoryTable.MaxMemSlots);
                return true;
            case VhostUserRequest.SetMemTable:
                CommitMemory(_memoryTable.PrepareReplace(m, VhostUserPayloadDecoder.ReadMemoryTable(m)));
                return false;
            case VhostUserRequest.AddMemReg:
                CommitMemory(_memoryTable.PrepareAdd(m, VhostUserPayloadDecoder.ReadSingleMemoryRegion(m)));
                return false;
            case VhostUserRequest.RemMemReg:
                CommitMemory(_memoryTable.PrepareRemove(VhostUserPayloadDecoder.ReadSingleMemoryRegion(m)));
                return false;
            case VhostUserRequest.SetVringNum:
                VringState num = VhostUserPayloadDecoder.ReadVringState(m);
                _rings.Vring(m.Request, num.Index).SetNum(num.Num);
                return false;
            case VhostUserRequest.SetVringAddr:
                VringAddress address = VhostUserPayloadDecoder.ReadVringAddress(m);
                _rings.SetAddresses(_rings.Vring(m.Request, address.Index), address, _memoryTable);
                return false;
            case VhostUserRequest.SetLogBase:
                _dirtyLog.SetLogBase(m);
                _channel.SendReply(m.Request, 0ul);
                return true;
            case VhostUserRequest.SetLogFd:
                _dirtyLog.SetLogFd(m);
                return false;
            case VhostUserRequest.SetVringBase:
                VringState vringBase = VhostUserPayloadDecoder.ReadVringState(m);
                _rings.Vring(m.Request, vringBase.Index).SetBase(vringBase.Num);
                return false;
            case VhostUserRequest.GetVringBase:
                VringState stopped = _rings.StopForBase(_rings.Vring(m.Request, VhostUserPayloadDecoder.ReadVringState(m).Index));
                Span<byte> state = stackalloc byte[VringState.Size];
                stopped.Write(state);
                _channel.SendReply(m.Request, state);
                return true;
            case VhostUserRequest.SetVringKick:
            case VhostUserRequest.SetVringCall:
            case VhostUserRequest.SetVringErr:
                SetVringFile(m, VhostUserPayloadDecoder.ReadVringFile(m));
                return false;
            case VhostUserRequest.SetVringEnable:
                VringState enable = VhostUserPayloadDecoder.ReadVringState(m);
                VhostUserVring enabled = _rings.Vring(m.Request, enable.Index);
                if (enable.Num > 1)
                {
                    throw new VhostUserProtocolException($"SET_VRING_ENABLE: ring {enabled.Index} value {enable.Num}, expected 0 or 1");
                }

                _rings.SetEnabled(enabled, enable.Num == 1);
                return false;
            case VhostUserRequest.GetInFlightFd:
                InFlightDescription wanted = VhostUserPayloadDecoder.ReadInFlightDescription(m, _rings.Count);
                _rings.RequireAllStopped(m.Request);
                InFlightRegion created = InFlightSharing.Create(_device, wanted);
                _rings.ReplaceInFlight(created, "created");
                Span<byte> geometry = stackalloc byte[InFlightDescription.Size];
                new InFlightDescription(created.Size, 0, created.QueueCount, created.QueueSize).Write(geometry);
                _channel.SendReply(m.Request, geometry, created.Fd);
                return true;
            case VhostUserRequest.SetInFlightFd:
                InFlightDescription kept = VhostUserPayloadDecoder.ReadInFlightDescription(m, _rings.Count);
                _rings.RequireAllStopped(m.Request);
                _rings.ReplaceInFlight(InFlightSharing.Map(_device, kept, m.TakeFd(0), _options.AllowUnsealedMemory), "received");
                return false;
            case VhostUserRequest.SetBackendReqFd:
                SetBackendChannel(m);
                return false;
            case VhostUserRequest.GetConfig:
                ConfigSpaceAccess read = VhostUserPayloadDecoder.ReadConfigAccess(m, out _);
                Span<byte> reply = stackalloc byte[ConfigSpaceAccess.HeaderSize + read.Size];
                read.WriteHeader(reply);
                _device.ReadConfig(read.Offset, reply[ConfigSpaceAccess.HeaderSize..]);
                _channel.SendReply(m.Request, reply);
                return true;
            case VhostUserRequest.SetConfig:
                ConfigSpaceAccess write = VhostUserPayloadDecoder.ReadConfigAccess(m, out ReadOnlySpan<byte> data);
                _device.WriteConfig(write.Offset, data);
                return false;
            default:
                throw new VhostUserProtocolException($"unsupported request {(uint)m.Request} ({m.Request})");
        }
    }

    private void Dispatch(VhostUserMessage m)
    {
        bool replied = Handle(m);
        if (!replied && m.NeedsReply && _features.ReplyAck)
        {
            _channel.SendReply(m.Request, 0ul);
        }
    }

    private void SetFeatures(ulong features)
    {
        ulong virtio = _features.Accept(features, out bool newDriver);
        if (newDriver)
        {
            _rings.StopAll();
            _features.StartDriver(virtio);
        }

        _dirtyLog.FeaturesSet(ringsStopped: newDriver);

        _features.Acknowledge();
        Log.FeaturesNegotiated(_logger, virtio, (ulong)_features.ProtocolFeatures);
        _rings.StartAll();
    }

    /// <summary>
    /// Nothing may touch the old mappings once they are gone: stop the rings that run (their
    /// in-flight requests finish first), swap, unmap what left, start them again.
    /// </summary>
    private void CommitMemory(MemoryTableGeneration next)
    {
        List<VhostUserVring> wasStarted = _rings.StopStarted();
        _memoryTable.Commit(next);
        _rings.Restart(wasStarted);
    }

    private void SetVringFile(VhostUserMessage m, VringFile file)
    {
        VhostUserVring vring = _rings.Vring(m.Request, file.Index);
        if (!file.NoFd && !FdKind.IsEventFd(m.PeekFd(0)))
        {
            // Anything else (a pipe, a file) could stay readable without a counter to consume
            // and keep the I/O thread spinning.
            throw new VhostUserProtocolException($"{m.Request}: ring {vring.Index}: the fd is not an eventfd");
        }

        EventFd? fd = file.NoFd ? null : EventFd.FromOwnedHandle(TakeRawFd(m));
        switch (m.Request)
        {
            case VhostUserRequest.SetVringKick:
                if (fd is null)
                {
                    throw new VhostUserProtocolException($"SET_VRING_KICK: ring {vring.Index} without a kick fd (polling mode) is not supported");
                }

                _rings.SetKick(vring, fd);
                break;
            case VhostUserRequest.SetVringCall:
                _rings.SetCall(vring, fd);
                break;
            default:
                vring.SetError(fd);
                break;
        }
    }

    /// <summary>SET_BACKEND_REQ_FD: no payload, one fd, a socket; only with BACKEND_REQ acked. Replaces an earlier one.</summary>
    private void SetBackendChannel(VhostUserMessage m)
    {
        VhostUserPayloadDecoder.ReadEmptyWithFd(m);
        if (!_features.BackendRequests)
        {
            throw new VhostUserProtocolException("SET_BACKEND_REQ_FD without VHOST_USER_PROTOCOL_F_BACKEND_REQ negotiated");
        }

        if (!FdKind.IsSocket(m.PeekFd(0)))
        {
            throw new VhostUserProtocolException("SET_BACKEND_REQ_FD: the fd is not a socket");
        }

        var channel = new BackendChannel(m.TakeFd(0), _features.ReplyAck, _logger);
        _notifier.SetBackendChannel(channel);
        _backendChannel?.Dispose();
        _backendChannel = channel;
        Log.BackendChannelSet(_logger);
    }

    private static int TakeRawFd(VhostUserMessage m)
    {
        SafeFileHandle handle = m.TakeFd(0);
        int fd = (int)handle.DangerousGetHandle();
        handle.SetHandleAsInvalid();
        return fd;
    }

    /// <summary>Stops every ring, closes the connection's fds and unmaps its memory. The device keeps its state.</summary>
    public void Dispose()
    {
        _notifier.SetBackendChannel(null);
        _backendChannel?.Dispose();
        _rings.Dispose();
        _memoryTable.Dispose();
        _message.ClearFds();
    }
}
