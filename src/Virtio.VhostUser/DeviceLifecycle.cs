using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// The requests that stop or reset the device: SET_STATUS and GET_STATUS
/// (VHOST_USER_PROTOCOL_F_STATUS), RESET_DEVICE (VHOST_USER_PROTOCOL_F_RESET_DEVICE) and the
/// deprecated RESET_OWNER. Keeps the status byte the front end last set. Used on the connection's thread.
/// </summary>
/// <remarks>
/// Two depths (docs/vhost-user.md, "Reset and status"):
/// <list type="bullet">
/// <item><see cref="Stop"/> (SET_STATUS 0, RESET_OWNER): the rings are drained and stopped and the device
/// is reset as a virtio reset would (queues, negotiated features, status), but each ring keeps what the
/// front end configured, including where it stopped: QEMU 7.2 sends SET_STATUS 0 before GET_VRING_BASE
/// when it stops a device, and GET_VRING_BASE must still return that position. The in-flight region is
/// kept (QEMU hands it back at the next start; after the drain nothing in it is in flight).</item>
/// <item><see cref="ResetDevice"/> (RESET_DEVICE): the same, then the rings forget their configuration
/// (size, addresses, base 0, disabled, fds closed) and the in-flight region is dropped: the next driver
/// starts from nothing and gets a fresh region with GET_INFLIGHT_FD.</item>
/// </list>
/// </remarks>
internal sealed class DeviceLifecycle
{
    private readonly VirtioDevice _device;
    private readonly FeatureNegotiation _features;
    private readonly VringRunner _rings;
    private readonly ILogger _logger;
    private byte _driverStatus;

    public DeviceLifecycle(VirtioDevice device, FeatureNegotiation features, VringRunner rings, ILogger logger)
    {
        _device = device;
        _features = features;
        _rings = rings;
        _logger = logger;
    }

    /// <summary>
    /// What GET_STATUS answers: the status the front end last set, without DEVICE_NEEDS_RESET, and
    /// DEVICE_NEEDS_RESET when the device has set it (a ring broke).
    /// </summary>
    public ulong Status => (ulong)(_driverStatus | (byte)(_device.Status & DeviceStatus.DeviceNeedsReset));

    /// <summary>SET_STATUS: a status byte (the upper bits of the u64 zero); 0 stops the device (<see cref="Stop"/>).</summary>
    public void SetStatus(ulong value)
    {
        Require(VhostUserProtocolFeatures.Status, VhostUserRequest.SetStatus);
        if (value > byte.MaxValue)
        {
            throw new VhostUserProtocolException($"SET_STATUS: 0x{value:x} is not a status byte");
        }

        if (value == 0)
        {
            Stop(VhostUserRequest.SetStatus);
            return;
        }

        // DEVICE_NEEDS_RESET is the device's to set: a front end echoing what GET_STATUS said does not keep it.
        _driverStatus = (byte)(value & ~(ulong)DeviceStatus.DeviceNeedsReset);
        Log.StatusSet(_logger, (byte)value);
    }

    /// <summary>GET_STATUS, after checking the feature is in use.</summary>
    public ulong GetStatus()
    {
        Require(VhostUserProtocolFeatures.Status, VhostUserRequest.GetStatus);
        return Status;
    }

    /// <summary>
    /// SET_STATUS 0 and RESET_OWNER: every ring drained and stopped (its position kept as its base),
    /// the device reset, the features to be negotiated again, the status 0.
    /// </summary>
    public void Stop(VhostUserRequest request)
    {
        StopAndReset();
        Log.DeviceStopped(_logger, request);
    }

    /// <summary>RESET_DEVICE: <see cref="Stop"/>, then the rings and the in-flight region back to their initial state.</summary>
    public void ResetDevice()
    {
        Require(VhostUserProtocolFeatures.ResetDevice, VhostUserRequest.ResetDevice);
        StopAndReset();
        _rings.ResetAll();
        Log.DeviceReset(_logger);
    }

    private void StopAndReset()
    {
        _rings.StopAll();
        _device.Reset();
        _features.Reset();
        _driverStatus = 0;
    }

    private void Require(VhostUserProtocolFeatures feature, VhostUserRequest request)
    {
        if ((_features.ProtocolFeatures & feature) == 0)
        {
            throw new VhostUserProtocolException($"{request} without VHOST_USER_PROTOCOL_F_{(feature == VhostUserProtocolFeatures.Status ? "STATUS" : "RESET_DEVICE")} negotiated");
        }
    }
}
