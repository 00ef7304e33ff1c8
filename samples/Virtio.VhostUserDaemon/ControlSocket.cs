using System;
using System.IO;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Tmds.Linux;

namespace Virtio.VhostUserDaemon;

/// <summary>
/// The daemon's control socket (--control PATH, docs/daemon.md, "The control socket"): a local
/// stream socket, created mode 0600 before it is bound (as the vhost-user sockets are) and, with
/// --allow-uid, served only to those user ids (SO_PEERCRED). A line protocol: one ASCII command a
/// line, one reply line each, <c>ok ...</c> or <c>error ...</c>. Commands: <c>resize NAME BYTES</c>
/// and <c>reload</c> (what SIGHUP does). Clients are served one at a time; a line longer than
/// <see cref="MaxLine"/> bytes, a byte outside printable ASCII, or a client idle for
/// <see cref="IdleTimeout"/> gets one error reply and is disconnected.
/// </summary>
internal sealed class ControlSocket : IDisposable
{
    /// <summary>The longest command line, newline excluded.</summary>
    public const int MaxLine = 256;

    /// <summary>How long a client may stay connected without sending a whole line.</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(30);

    private readonly Socket _listener;
    private readonly string _path;
    private readonly uint[]? _allowedUserIds;
    private readonly DiskResizer _disks;
    private readonly ILogger _logger;

    private ControlSocket(Socket listener, string path, uint[]? allowedUserIds, DiskResizer disks, ILogger logger)
    {
        _listener = listener;
        _path = path;
        _allowedUserIds = allowedUserIds;
        _disks = disks;
        _logger = logger;
    }

    /// <summary>Binds <paramref name="path"/> (replacing a stale socket file, never another file or a live socket).</summary>
    /// <exception cref="IOException">The path is taken, or binding failed.</exception>
    public static ControlSocket Bind(string path, uint[]? allowedUserIds, DiskResizer disks, ILogger logger)
    {
        if (File.Exists(path) || Directory.Exists(path))
        {
            if (Directory.Exists(path) || !IsStaleSocket(path))
            {
                throw new IOException($"--control {path}: exists and is not a stale socket (another file, or a socket someone listens on); not replaced");
            }

            File.Delete(path);
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            // The file takes the socket inode's mode at bind: owner only from the first instant.
            _ = LibC.fchmod((int)listener.Handle, 0x180); // 0600
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(4);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new IOException($"--control {path}: {e.Message}", e);
        }

        logger.LogInformation("control socket at {Path}: resize NAME BYTES, reload", path);
        return new ControlSocket(listener, path, allowedUserIds, disks, logger);
    }

    /// <summary>Serves clients until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            using (client)
            {
                await ServeAsync(client, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task ServeAsync(Socket client, CancellationToken cancellationToken)
    {
        if (_allowedUserIds is not null && (PeerUserId(client) is not uint uid || Array.IndexOf(_allowedUserIds, uid) < 0))
        {
            _logger.LogWarning("control socket: a client whose user id is not allowed (SO_PEERCRED) was disconnected");
            return;
        }

        byte[] buffer = new byte[MaxLine + 1];
        int filled = 0;
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            while (true)
            {
                idle.CancelAfter(IdleTimeout);
                int newline = Array.IndexOf(buffer, (byte)'\n', 0, filled);
                if (newline < 0)
                {
                    if (filled == buffer.Length)
                    {
                        await ReplyAsync(client, $"error line longer than {MaxLine} bytes", idle.Token).ConfigureAwait(false);
                        return;
                    }

                    int read = await client.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, idle.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return;
                    }

                    filled += read;
                    continue;
                }

                string? line = Decode(buffer.AsSpan(0, newline));
                Array.Copy(buffer, newline + 1, buffer, 0, filled - newline - 1);
                filled -= newline + 1;
                if (line is null)
                {
                    await ReplyAsync(client, "error only printable ASCII is accepted", idle.Token).ConfigureAwait(false);
                    return;
                }

                await ReplyAsync(client, Execute(line), idle.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning("control socket: a client idle for {Timeout} was disconnected", IdleTimeout);
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
            // The client went away mid-reply.
        }
    }

    /// <summary>One command line to its reply line.</summary>
    internal string Execute(string line)
    {
        string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        switch (words)
        {
            case ["resize", string name, string bytes]:
                return _disks.Resize(name, bytes, out string message) ? "ok " + message : "error " + message;
            case ["reload"]:
                return "ok " + _disks.RereadAll();
            case []:
                return "error empty line (commands: resize NAME BYTES, reload)";
            default:
                return "error unknown command (commands: resize NAME BYTES, reload)";
        }
    }

    /// <summary>The line as text, a trailing CR dropped; null when it holds a control or non-ASCII byte.</summary>
    private static string? Decode(ReadOnlySpan<byte> line)
    {
        if (line.Length > 0 && line[^1] == (byte)'\r')
        {
            line = line[..^1];
        }

        foreach (byte b in line)
        {
            if (b is < 0x20 or > 0x7e)
            {
                return null;
            }
        }

        return Encoding.ASCII.GetString(line);
    }

    private static async Task ReplyAsync(Socket client, string reply, CancellationToken cancellationToken)
    {
        byte[] bytes = Encoding.ASCII.GetBytes(reply.Replace('\n', ' ') + "\n");
        int sent = 0;
        while (sent < bytes.Length)
        {
            sent += await client.SendAsync(bytes.AsMemory(sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Whether <paramref name="path"/> is a socket file nobody listens on (connect refused): a stale one, safe to replace.</summary>
    private static bool IsStaleSocket(string path)
    {
        try
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return false; // someone listens there
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode == SocketError.ConnectionRefused; // otherwise not a socket at all
        }
    }

    private static uint? PeerUserId(Socket connection)
    {
        Span<byte> credentials = stackalloc byte[12];
        try
        {
            return connection.GetRawSocketOption(LibC.SOL_SOCKET, LibC.SO_PEERCRED, credentials) >= 8
                ? System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(credentials[4..])
                : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>Closes the socket and removes its file.</summary>
    public void Dispose()
    {
        _listener.Dispose();
        try
        {
            File.Delete(_path);
        }
        catch (IOException)
        {
        }
    }
}
