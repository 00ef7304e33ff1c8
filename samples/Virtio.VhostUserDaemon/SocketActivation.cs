using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net.Sockets;

namespace Virtio.VhostUserDaemon;

/// <summary>
/// Listening sockets inherited from systemd socket activation (sd_listen_fds(3)): when LISTEN_PID
/// is this process, fds 3 .. 3 + LISTEN_FDS - 1, each matched to a device by the path it is bound
/// to (the device's socket=PATH or --socket).
/// </summary>
internal sealed class SocketActivation : IDisposable
{
    private const int FirstFd = 3; // SD_LISTEN_FDS_START

    private readonly Dictionary<string, Socket> _byPath = new(StringComparer.Ordinal);

    private SocketActivation()
    {
    }

    /// <summary>How many sockets were inherited and not yet taken.</summary>
    public int Count => _byPath.Count;

    /// <summary>The inherited sockets, or none when the process was not socket-activated.</summary>
    /// <exception cref="IOException">An inherited fd is not a Unix socket bound to a path.</exception>
    public static SocketActivation FromEnvironment()
    {
        var activation = new SocketActivation();
        string? pid = Environment.GetEnvironmentVariable("LISTEN_PID");
        string? fds = Environment.GetEnvironmentVariable("LISTEN_FDS");
        if (pid != Environment.ProcessId.ToString(CultureInfo.InvariantCulture)
            || !int.TryParse(fds, NumberStyles.None, CultureInfo.InvariantCulture, out int count))
        {
            return activation;
        }

        // As sd_listen_fds(unset_environment=1): children do not see them.
        Environment.SetEnvironmentVariable("LISTEN_PID", null);
        Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        Environment.SetEnvironmentVariable("LISTEN_FDNAMES", null);
        for (int fd = FirstFd; fd < FirstFd + count; fd++)
        {
            var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
            if (socket.LocalEndPoint is not UnixDomainSocketEndPoint { } endPoint || string.IsNullOrEmpty(endPoint.ToString()))
            {
                socket.Dispose();
                activation.Dispose();
                throw new IOException($"LISTEN_FDS: fd {fd} is not a Unix socket bound to a path.");
            }

            activation._byPath[Path.GetFullPath(endPoint.ToString())] = socket;
        }

        return activation;
    }

    /// <summary>The inherited socket bound to <paramref name="path"/>, now the caller's; null when there is none.</summary>
    public Socket? Take(string path)
    {
        string full = Path.GetFullPath(path);
        if (_byPath.Remove(full, out Socket? socket))
        {
            return socket;
        }

        return null;
    }

    /// <summary>The paths of the sockets nobody took.</summary>
    public IEnumerable<string> Untaken => _byPath.Keys;

    public void Dispose()
    {
        foreach (Socket socket in _byPath.Values)
        {
            socket.Dispose();
        }

        _byPath.Clear();
    }
}
