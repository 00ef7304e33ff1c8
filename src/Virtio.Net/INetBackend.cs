using System;
using System.Runtime.InteropServices;

namespace Virtio.Net;

/// <summary>
/// Where a <see cref="NetDevice"/>'s frames go and come from (one instance per queue pair): a TAP
/// device, a user-space network stack, another device. Embedders implement it for their own networks.
/// </summary>
/// <remarks>
/// <para>The device calls <see cref="TryTransmit"/> on the thread processing the pair's transmit queue
/// and <see cref="TryReceive"/> on the thread processing its receive queue, one call at a time per
/// direction, possibly concurrently with each other. Neither may block or allocate per frame.</para>
/// <para>Readiness is level-triggered: <see cref="ReceiveReadyHandle"/> is readable (epoll) while frames
/// may be waiting. The device stops watching it while the guest has no receive buffers, so a backend
/// keeps its frames until then; nothing is read and dropped.</para>
/// </remarks>
public interface INetBackend
{
    /// <summary>
    /// Offloads the backend honours; when not <see cref="NetOffloads.None"/> it consumes and produces
    /// virtio-net headers. The device offers the guest only these. Read once, at device creation.
    /// </summary>
    NetOffloads Offloads { get; }

    /// <summary>
    /// An fd readable while frames may be waiting, watched by the device's <see cref="Core.Threading.IoThread"/>.
    /// </summary>
    SafeHandle ReceiveReadyHandle { get; }

    /// <summary>
    /// The offloads the guest accepted on receive (called when the driver sets DRIVER_OK, on the
    /// transport's thread): the backend must not produce frames needing others.
    /// </summary>
    /// <param name="guestOffloads">A subset of <see cref="Offloads"/>.</param>
    void SetReceiveOffloads(NetOffloads guestOffloads);

    /// <summary>Sends one frame. Must not block.</summary>
    /// <param name="header">The guest's virtio-net header, validated against the negotiated features.</param>
    /// <param name="frame">The Ethernet frame (without the header).</param>
    /// <returns>False when the backend could not take the frame now (it is dropped and counted).</returns>
    bool TryTransmit(in VirtioNetHeader header, NetFrameSegments frame);

    /// <summary>Takes the next waiting frame, if any. Must not block.</summary>
    /// <param name="frame">Receives the Ethernet frame; large enough for any frame the device accepts.</param>
    /// <param name="length">The frame's length.</param>
    /// <param name="header">Its offload header (all zero for a backend without offloads).</param>
    /// <returns>False when no frame is waiting.</returns>
    bool TryReceive(Span<byte> frame, out int length, out VirtioNetHeader header);
}
