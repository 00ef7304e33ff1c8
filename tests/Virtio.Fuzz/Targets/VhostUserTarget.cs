using System;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Core.Queues;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Protocol;

namespace Virtio.Fuzz.Targets;

/// <summary>
/// <c>vhost-user</c>: a front end's bytes as the back end reads them. The bytes go through a
/// socket pair into the real <see cref="UnixMessageChannel"/> (header, version and flags, payload
/// limit), and each message it accepts, given the number of fds the input asks for, to the
/// <see cref="VhostUserPayloadDecoder"/> method the session's dispatcher picks for that request.
/// </summary>
/// <remarks>
/// <para>Input: byte 0: low 4 bits the fd count attached to every message (0-15; the channel takes
/// at most 8 per message, the decoders check the count each request needs), bits 4-5 the device's
/// queue count - 1 (for the in-flight description); the rest is the byte stream, up to 32 KiB.</para>
/// <para>Invariants: only <see cref="VhostUserProtocolException"/> may come out of the channel or a
/// decoder (it ends the connection, as in the session); a message holds at most its limits of
/// payload and fds; what a decoder returns obeys its rules (a memory table of 1 to 8 page-aligned,
/// non-empty, non-wrapping regions with one fd each; a config access inside the 256-byte space with
/// exactly its bytes; an in-flight description of 1 to the device's queues of a power-of-two size
/// up to 32768; a vring file with an fd unless it says "no fd"; no unknown vring-address flags); the
/// stream is read to its end or to the first refused message, and at most one message per 12 bytes.</para>
/// </remarks>
internal sealed class VhostUserTarget : IFuzzTarget
{
    private const int MaxStream = 32 << 10;
    private static readonly ulong s_page = (ulong)Environment.SystemPageSize;

    private readonly VhostUserMessage _message = new();

    public string Name => "vhost-user";

    public void Host(Action loop) => loop();

    public void Run(ReadOnlySpan<byte> input)
    {
        var reader = new FuzzInput(input);
        byte shape = reader.Byte();
        int fds = shape & 0xF, deviceQueues = 1 + ((shape >> 4) & 3);
        ReadOnlySpan<byte> stream = reader.Take(MaxStream);
        (Socket front, Socket back) = SocketPair();
        using (front)
        using (back)
        {
            front.Send(stream);
            front.Shutdown(SocketShutdown.Send);
            var channel = new UnixMessageChannel(back);
            int messages = 0;
            try
            {
                while (channel.TryReceive(_message))
                {
                    Invariant.Check(++messages <= (stream.Length / VhostUserMessage.HeaderSize), $"{messages} messages out of {stream.Length} bytes");
                    Invariant.Check(_message.Size <= VhostUserMessage.MaxPayloadSize && _message.FdCount == 0, $"a message of {_message.Size} bytes with {_message.FdCount} fds (none were sent)");
                    for (int i = 0; i < Math.Min(fds, VhostUserMessage.MaxFds); i++)
                    {
                        _message.AddFd(new SafeFileHandle(-1, ownsHandle: false));
                    }

                    Decode(_message, deviceQueues);
                }
            }
            catch (VhostUserProtocolException)
            {
                // The session answers this by closing the connection: a correct refusal.
            }
            finally
            {
                _message.ClearFds();
            }
        }
    }

    /// <summary>The decoding half of the session's dispatcher (VhostUserSession.Handle), with the rules each result must obey.</summary>
    private static void Decode(VhostUserMessage m, int deviceQueues)
    {
        switch (m.Request)
        {
            case VhostUserRequest.GetFeatures or VhostUserRequest.GetProtocolFeatures or VhostUserRequest.SetOwner
                or VhostUserRequest.ResetOwner or VhostUserRequest.GetQueueNum or VhostUserRequest.GetMaxMemSlots:
                VhostUserPayloadDecoder.ReadEmpty(m);
                Invariant.Check(m.Size == 0 && m.FdCount == 0, $"{m.Request} with {m.Size} bytes and {m.FdCount} fds was accepted");
                break;
            case VhostUserRequest.SetFeatures or VhostUserRequest.SetProtocolFeatures:
                VhostUserPayloadDecoder.ReadUInt64(m);
                Invariant.Check(m.Size == 8 && m.FdCount == 0, $"{m.Request} with {m.Size} bytes and {m.FdCount} fds was accepted");
                break;
            case VhostUserRequest.SetMemTable:
                MemoryRegionDescription[] regions = VhostUserPayloadDecoder.ReadMemoryTable(m);
                Invariant.Check(regions.Length is >= 1 and <= VhostUserPayloadDecoder.MemTableMaxRegions && m.FdCount == regions.Length, $"a memory table of {regions.Length} regions with {m.FdCount} fds was accepted");
                for (int i = 0; i < regions.Length; i++)
                {
                    CheckRegion(regions[i], m.Request);
                }

                break;
            case VhostUserRequest.AddMemReg or VhostUserRequest.RemMemReg:
                MemoryRegionDescription region = VhostUserPayloadDecoder.ReadSingleMemoryRegion(m);
                if (m.Request == VhostUserRequest.AddMemReg)
                {
                    Invariant.Check(m.FdCount == 1, $"ADD_MEM_REG with {m.FdCount} fds was accepted");
                    CheckRegion(region, m.Request);
                }

                break;
            case VhostUserRequest.SetVringNum or VhostUserRequest.SetVringBase or VhostUserRequest.GetVringBase or VhostUserRequest.SetVringEnable:
                VhostUserPayloadDecoder.ReadVringState(m);
                Invariant.Check(m.Size == VringState.Size && m.FdCount == 0, $"{m.Request} with {m.Size} bytes and {m.FdCount} fds was accepted");
                break;
            case VhostUserRequest.SetVringAddr:
                VringAddress address = VhostUserPayloadDecoder.ReadVringAddress(m);
                Invariant.Check((address.Flags & ~VringAddress.FlagLog) == 0 && m.FdCount == 0, $"SET_VRING_ADDR with flags 0x{address.Flags:x} and {m.FdCount} fds was accepted");
                break;
            case VhostUserRequest.SetVringKick or VhostUserRequest.SetVringCall or VhostUserRequest.SetVringErr:
                VringFile file = VhostUserPayloadDecoder.ReadVringFile(m);
                Invariant.Check(file.Index <= VringFile.IndexMask && m.FdCount == (file.NoFd ? 0 : 1), $"{m.Request} of ring {file.Index} (no fd: {file.NoFd}) with {m.FdCount} fds was accepted");
                break;
            case VhostUserRequest.GetInFlightFd or VhostUserRequest.SetInFlightFd:
                InFlightDescription inFlight = VhostUserPayloadDecoder.ReadInFlightDescription(m, deviceQueues);
                Invariant.Check(inFlight.QueueCount >= 1 && inFlight.QueueCount <= deviceQueues, $"{m.Request} of {inFlight.QueueCount} queues on a device of {deviceQueues} was accepted");
                Invariant.Check(inFlight.QueueSize is >= 1 and <= SplitVirtqueue.MaxQueueSize && (inFlight.QueueSize & (inFlight.QueueSize - 1)) == 0, $"{m.Request} of queue size {inFlight.QueueSize} was accepted");
                Invariant.Check(m.FdCount == (m.Request == VhostUserRequest.SetInFlightFd ? 1 : 0), $"{m.Request} with {m.FdCount} fds was accepted");
                break;
            case VhostUserRequest.GetConfig or VhostUserRequest.SetConfig:
                ConfigSpaceAccess access = VhostUserPayloadDecoder.ReadConfigAccess(m, out ReadOnlySpan<byte> data);
                Invariant.Check(access.Offset >= 0 && access.Size >= 0 && access.Offset + access.Size <= ConfigSpaceAccess.MaxConfigSize, $"a config access of {access.Size} bytes at {access.Offset} was accepted");
                Invariant.Check(data.Length == access.Size && m.Size == ConfigSpaceAccess.HeaderSize + access.Size && m.FdCount == 0, $"a config access of {access.Size} bytes came with {data.Length} ({m.Size} in all, {m.FdCount} fds)");
                break;
            default:
                break; // the session refuses every other request by name
        }
    }

    private static void CheckRegion(in MemoryRegionDescription region, VhostUserRequest request)
    {
        Invariant.Check(region.Size != 0 && region.Size % s_page == 0 && region.GuestAddress % s_page == 0 && region.MmapOffset % s_page == 0, $"{region.Describe(request, 0)} is not page-aligned but was accepted");
        Invariant.Check(region.GuestAddress + region.Size > region.GuestAddress && region.UserAddress + region.Size > region.UserAddress && region.MmapOffset + region.Size > region.MmapOffset, $"{region.Describe(request, 0)} wraps but was accepted");
    }

    private static (Socket Front, Socket Back) SocketPair()
    {
        int front, back;
        unsafe
        {
            int* pair = stackalloc int[2];
            // SAFETY: `pair` has room for the two fds socketpair(2) writes, and lives across the call.
            if (LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0, pair) != 0)
            {
                throw new InvalidOperationException($"socketpair failed: errno {LibC.errno}");
            }

            front = pair[0];
            back = pair[1];
        }

        return (new Socket(new SafeSocketHandle(front, ownsHandle: true)), new Socket(new SafeSocketHandle(back, ownsHandle: true)));
    }

    public void Dispose() => _message.ClearFds();
}
