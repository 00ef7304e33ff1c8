using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tmds.Linux;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// Serves one virtio device to a vhost-user front end (QEMU, Cloud Hypervisor, crosvm, ...) over a
/// Unix socket: the front end shares guest memory and per-ring kick/call eventfds, the device
/// processes its rings on I/O threads of this server. One front end is served at a time; when it
/// disconnects the rings stop (in-flight requests finish first), the device keeps its state, and
/// the next connection is accepted. A front end that breaks the protocol is disconnected with a
/// logged reason.
/// </summary>
/// <remarks>
/// Ownership: the server owns the device its factory built and the I/O threads it started; the
/// caller owns the backends and any I/O threads it passed in, and disposes them after the server.
/// Disposing the server stops serving, waits for <see cref="RunAsync"/> to finish (the current
/// connection's rings drain first), then disposes the device and the server's own I/O threads.
/// </remarks>
/// <example>
/// <code>
/// using var disk = new FileBlockBackend("disk.img");
/// await using var server = new VhostUserServer("/run/disk.sock", memory => new BlockDevice(memory, disk), logger);
/// await server.RunAsync(cancellationToken);
/// </code>
/// </example>
public sealed class VhostUserServer : IDisposable, IAsyncDisposable
{
    private readonly VhostUserMemory _memory = new();
    private readonly VhostUserGuestNotifier _notifier;
    private readonly IoThread[] _ioThreads;
    private readonly bool _ownsIoThreads;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private Socket? _listener;
    private Socket? _connection;
    private int _connections;
    private int _disposed;
    private Task? _run;
    private (ulong Device, ulong Inode, long ChangeSeconds, long ChangeNanoseconds)? _socketFile;
    private ulong _maxGuestMemoryBytes = VhostUserMemoryTable.DefaultMaxBytes;
    private TimeSpan _drainTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Creates the device over the memory the front ends will share, and the I/O threads its rings
    /// run on. Nothing listens until <see cref="RunAsync"/>. Any thread.
    /// </summary>
    /// <param name="socketPath">Where to listen; an existing socket file there is replaced.</param>
    /// <param name="createDevice">Builds the device on the given guest memory (which is empty until a front end connects). Called once, here.</param>
    /// <param name="logger">Where connections, protocol errors and ring events are logged; none by default.</param>
    /// <param name="ioThreads">
    /// The started I/O threads ring i is served on: <c>ioThreads[i % Count]</c>, the rule of
    /// <c>BlockDeviceOptions.IoThreads</c> and <see cref="Virtio.Core.Notifications.HostNotifierController"/>.
    /// Give the device the same list so its completions are pushed on the ring's own thread and
    /// batched into one call-fd write per wake-up. The caller keeps ownership. When null the
    /// server starts and owns one thread per ring, up to the processor count.
    /// </param>
    /// <exception cref="ArgumentException"><paramref name="socketPath"/> is empty, <paramref name="ioThreads"/> is empty, or the factory returned a device not built on the given memory.</exception>
    public VhostUserServer(string socketPath, Func<IGuestMemory, VirtioDevice> createDevice, ILogger? logger = null, IReadOnlyList<IoThread>? ioThreads = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        ArgumentNullException.ThrowIfNull(createDevice);
        SocketPath = socketPath;
        _logger = logger ?? NullLogger.Instance;
        Device = createDevice(_memory);
        if (!ReferenceEquals(Device.Memory, _memory))
        {
            throw new ArgumentException("The device must be created on the memory passed to the factory.", nameof(createDevice));
        }

        // Every request pins the memory-table generation it was popped under, for the device's
        // lifetime: a request may outlive the connection that made it available.
        foreach (SplitVirtqueue queue in Device.Queues)
        {
            queue.Pinning = new GenerationPins(_memory, queue.Index, queue.MaxSize, _logger);
        }

        _notifier = new VhostUserGuestNotifier(Device.Queues.Count);
        Device.GuestNotifier = _notifier;
        if (ioThreads is not null)
        {
            if (ioThreads.Count == 0)
            {
                throw new ArgumentException("Give at least one I/O thread, or null.", nameof(ioThreads));
            }

            _ioThreads = [.. ioThreads];
            return;
        }

        _ownsIoThreads = true;
        _ioThreads = new IoThread[Math.Clamp(Device.Queues.Count, 1, Math.Max(1, Environment.ProcessorCount))];
        for (int i = 0; i < _ioThreads.Length; i++)
        {
            _ioThreads[i] = new IoThread($"vhost-user-{i}", _logger);
            _ioThreads[i].Start();
        }
    }

    /// <summary>The served device.</summary>
    public VirtioDevice Device { get; }

    /// <summary>The socket path the server listens on.</summary>
    public string SocketPath { get; }

    /// <summary>
    /// A socket already bound to <see cref="SocketPath"/> and listening, to accept on instead of
    /// binding the path: one inherited from a service manager (systemd socket activation,
    /// LISTEN_FDS). The server owns it from <see cref="RunAsync"/> on and closes it when it stops,
    /// but leaves the socket file alone (its creator removes it). Null (the default): the server
    /// binds <see cref="SocketPath"/> itself. Set before <see cref="RunAsync"/>.
    /// </summary>
    public Socket? ListeningSocket { get; init; }

    /// <summary>
    /// The user ids a front end may run under, checked with SO_PEERCRED when it connects: another
    /// peer is disconnected at once with one logged reason (event 4030), before it can send a message.
    /// Null (the default) accepts any peer that can open the socket, which <see cref="RunAsync"/>
    /// creates with mode 0600 (its owner only). Set before <see cref="RunAsync"/>.
    /// </summary>
    public IReadOnlyCollection<uint>? AllowedUserIds { get; set; }

    /// <summary>
    /// How long stopping a ring (GET_VRING_BASE, a disconnect, cancelling <see cref="RunAsync"/>,
    /// <see cref="Dispose"/>) waits for its in-flight requests. When it runs out the ring stops
    /// without them and logs so: they keep the memory they were popped under mapped, their
    /// completions are dropped, and the in-flight region (when the front end shared one) keeps them
    /// for the next back end to resubmit. 30 s by default. Set before a front end connects; read when
    /// a connection starts.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative or infinite.</exception>
    public TimeSpan DrainTimeout
    {
        get => _drainTimeout;
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            _drainTimeout = value;
        }
    }

    /// <summary>
    /// The most bytes of guest memory one front end may have mapped at a time (all regions of its
    /// SET_MEM_TABLE or ADD_MEM_REG table together): a table over it is refused and the connection
    /// closed with one logged reason. The mappings are shared file mappings and cost no memory until
    /// touched, but a sparse memfd of any size would take that much of this process's address
    /// space. 1 TiB by default. Set before <see cref="RunAsync"/>; read when a connection starts.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is 0.</exception>
    public ulong MaxGuestMemoryBytes
    {
        get => _maxGuestMemoryBytes;
        set
        {
            ArgumentOutOfRangeException.ThrowIfZero(value);
            _maxGuestMemoryBytes = value;
        }
    }

    /// <summary>
    /// Whether shared memory (SET_MEM_TABLE, ADD_MEM_REG and SET_INFLIGHT_FD fds) that is not sealed
    /// against shrinking is mapped. False by default: such an fd is refused and the connection
    /// closed with one logged reason, because a front end that truncates the file under the mapping
    /// (ftruncate) makes the next access kill this process with SIGBUS. QEMU's
    /// memory-backend-memfd seals its memfd (seal=on is its default); a memory-backend-file (a
    /// hugetlbfs, tmpfs or disk file) cannot be sealed: set this only for a front end you trust not
    /// to truncate it. Set before <see cref="RunAsync"/>; read when a connection starts.
    /// </summary>
    public bool AllowUnsealedMemory { get; set; }

    /// <summary>
    /// Listens on <see cref="SocketPath"/> and serves front ends one after the other until
    /// <paramref name="cancellationToken"/> is cancelled; then stops the rings of the current
    /// connection, closes it and removes the socket file. The socket file is created with mode 0600;
    /// an existing socket file at the path is replaced, anything else there is left alone and refused.
    /// Call once.
    /// </summary>
    /// <param name="cancellationToken">Stops serving.</param>
    /// <returns>Completes when the server has stopped.</returns>
    /// <exception cref="IOException">Something that is not a socket exists at <see cref="SocketPath"/>, or binding failed.</exception>
    public Task RunAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (ListeningSocket is { } inherited)
        {
            _listener = inherited;
            Log.Listening(_logger, SocketPath, Device.DeviceId, Device.Queues.Count);
            return _run = Task.Factory.StartNew(() => AcceptLoop(inherited, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        if (IsSocketFile(SocketPath) is bool socket)
        {
            if (!socket)
            {
                // A typo (--socket disk.img) must not delete the disk.
                throw new IOException($"{SocketPath} exists and is not a socket; refusing to replace it.");
            }

            File.Delete(SocketPath);
        }

        Socket listener = Listen(SocketPath);
        _socketFile = FileIdentity(SocketPath);
        _listener = listener;
        Log.Listening(_logger, SocketPath, Device.DeviceId, Device.Queues.Count);
        return _run = Task.Factory.StartNew(() => AcceptLoop(listener, cancellationToken), cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void AcceptLoop(Socket listener, CancellationToken cancellationToken)
    {
        using CancellationTokenRegistration stop = cancellationToken.Register(static state => ((VhostUserServer)state!).Interrupt(), this);
        try
        {
            while (!cancellationToken.IsCancellationRequested && Volatile.Read(ref _disposed) == 0)
            {
                Socket connection;
                try
                {
                    connection = listener.Accept();
                }
                catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
                {
                    if (cancellationToken.IsCancellationRequested || Volatile.Read(ref _disposed) != 0)
                    {
                        break;
                    }

                    throw;
                }

                lock (_gate)
                {
                    _connection = connection;
                }

                Serve(connection, ++_connections);
                lock (_gate)
                {
                    _connection = null;
                }
            }
        }
        finally
        {
            listener.Dispose();
            if (ListeningSocket is null)
            {
                RemoveSocketFileIfOurs();
            }
        }
    }

    /// <summary>
    /// A listening Unix socket bound to <paramref name="path"/> through libc: a Socket bound to a
    /// UnixDomainSocketEndPoint unlinks its path when disposed, whoever owns the file by then.
    /// </summary>
    private static unsafe Socket Listen(string path)
    {
        var address = default(sockaddr_un);
        int length = System.Text.Encoding.UTF8.GetByteCount(path);
        if (length >= 108)
        {
            throw new ArgumentException($"The socket path is {length} bytes; a Unix socket path has at most 107.", nameof(path));
        }

        address.sun_family = (ushort)LibC.AF_UNIX;
        // SAFETY: sun_path is the 108-byte fixed buffer of a local; the path's bytes (checked
        // above to be under 108) leave its last byte zero, so it stays NUL-terminated.
        System.Text.Encoding.UTF8.GetBytes(path, new Span<byte>(address.sun_path, 108));
        int fd = LibC.socket(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new IOException($"socket(AF_UNIX) failed: errno {LibC.errno}");
        }

        var handle = new SafeSocketHandle(fd, ownsHandle: true);

        // Linux creates the socket file with the socket inode's mode (less the umask): owner only
        // from the first instant, so nobody else can connect between bind and a chmod. The front end
        // shares all of guest memory with whoever it reaches here.
        _ = LibC.fchmod(fd, 0x180); // 0600
        // SAFETY: address is a local that outlives the call and the kernel reads only its
        // sizeof(sockaddr_un) bytes; fd is the socket created above, owned by handle.
        if (LibC.bind(fd, (sockaddr*)&address, (uint)sizeof(sockaddr_un)) != 0 || LibC.listen(fd, 1) != 0)
        {
            int errno = LibC.errno;
            handle.Dispose();
            throw new IOException($"binding {path} failed: errno {errno}");
        }

        return new Socket(handle);
    }

    /// <summary>
    /// Removes the socket file unless another server has bound the path since (a restarted daemon
    /// starting while this one still drains its rings): unlinking that file would leave the front
    /// end nothing to reconnect to.
    /// </summary>
    private void RemoveSocketFileIfOurs()
    {
        var now = FileIdentity(SocketPath);
        if (now is null)
        {
            return;
        }

        if (now != _socketFile)
        {
            Log.SocketReplaced(_logger, SocketPath);
            return;
        }

        try
        {
            File.Delete(SocketPath);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The peer's user id from SO_PEERCRED (struct ucred: pid, uid, gid), or null when the kernel gives none.</summary>
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

    /// <summary>Whether the file at <paramref name="path"/> is a socket (lstat: a symbolic link is not), or null when nothing is there.</summary>
    private static unsafe bool? IsSocketFile(string path)
    {
        int length = System.Text.Encoding.UTF8.GetMaxByteCount(path.Length) + 1;
        Span<byte> name = length <= 1024 ? stackalloc byte[length] : new byte[length];
        name[System.Text.Encoding.UTF8.GetBytes(path, name)] = 0;
        stat st;
        fixed (byte* p = name)
        {
            // SAFETY: p is a NUL-terminated copy of the path; st is a local the kernel fills.
            if (LibC.lstat(p, &st) != 0)
            {
                return null;
            }
        }

        return (st.st_mode & LibC.S_IFMT) == LibC.S_IFSOCK;
    }

    /// <summary>Which file is at <paramref name="path"/> now: device and inode, plus its change time,
    /// since a file system hands a freed inode number to the next file at once.</summary>
    private static unsafe (ulong Device, ulong Inode, long ChangeSeconds, long ChangeNanoseconds)? FileIdentity(string path)
    {
        int length = System.Text.Encoding.UTF8.GetMaxByteCount(path.Length) + 1;
        Span<byte> name = length <= 1024 ? stackalloc byte[length] : new byte[length];
        name[System.Text.Encoding.UTF8.GetBytes(path, name)] = 0;
        stat st;
        fixed (byte* p = name)
        {
            // SAFETY: p is a NUL-terminated copy of the path; st is a local the kernel fills.
            return LibC.lstat(p, &st) == 0 ? ((ulong)st.st_dev, (ulong)st.st_ino, (long)st.st_ctim.tv_sec, (long)st.st_ctim.tv_nsec) : null;
        }
    }

    private void Serve(Socket connection, int id)
    {
        Log.Connected(_logger, id);
        if (AllowedUserIds is { } allowed && (PeerUserId(connection) is not uint uid || !System.Linq.Enumerable.Contains(allowed, uid)))
        {
            Log.PeerRefused(_logger, id, PeerUserId(connection)?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown");
            connection.Dispose();
            return;
        }

        try
        {
            using (connection)
            using (var session = new VhostUserSession(Device, _memory, _notifier, _ioThreads, new UnixMessageChannel(connection), new VhostUserSessionOptions(DrainTimeout, MaxGuestMemoryBytes, AllowUnsealedMemory), _logger))
            {
                try
                {
                    session.Run();
                }
                catch (VhostUserProtocolException exception)
                {
                    Log.ProtocolError(_logger, id, exception.Message);
                    return;
                }
            }
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            // Whatever one front end did (or failed to do), the next one is served.
            Log.ConnectionFailed(_logger, id, exception);
            return;
        }

        Log.Disconnected(_logger, id);
    }

    private void Interrupt()
    {
        lock (_gate)
        {
            try
            {
                // Wakes a thread blocked in accept() on Linux (closing the fd alone may not, as for
                // an inherited socket, ListeningSocket).
                _listener?.Shutdown(SocketShutdown.Both);
            }
            catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
            {
            }

            _listener?.Dispose();
            try
            {
                // Receive only: the session's read returns end of stream and it stops (drains) its
                // rings while the front end still sees the connection; the hang-up comes when the
                // session closes the socket after the drain. A front end that restarts its rings at
                // used->idx when it sees the hang-up (QEMU, whose GET_VRING_BASE fails then) must
                // read it after the last completion, or the next back end would run those again.
                _connection?.Shutdown(SocketShutdown.Receive);
            }
            catch (Exception exception) when (exception is SocketException or ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// Stops serving as a cancelled <see cref="RunAsync"/> does (the current connection's rings drain,
    /// each for at most <see cref="DrainTimeout"/>), waits for <see cref="RunAsync"/>'s task, then
    /// disposes the device (<see cref="VirtioDevice.Dispose()"/>: its reset waits, up to the device's
    /// own reset timeout, for requests that outlived the drain, and drops their completions) and the
    /// I/O threads the server started. The caller disposes the backends and its own I/O threads afterwards. Idempotent;
    /// never throws: a failed <see cref="RunAsync"/> task is left for its awaiter to observe. Not on
    /// an I/O thread of the server.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Interrupt();
        try
        {
            _run?.Wait();
        }
        catch (AggregateException)
        {
            // The RunAsync task failed or was cancelled: its awaiter sees why; disposing goes on.
        }

        Release();
    }

    /// <summary>
    /// <see cref="Dispose"/> that awaits <see cref="RunAsync"/>'s task instead of blocking on it.
    /// Idempotent; never throws.
    /// </summary>
    /// <returns>Completes when the server, its device and its own I/O threads are disposed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Interrupt();
        if (_run is { } run)
        {
            await run.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
        }

        await Device.DisposeAsync().ConfigureAwait(false);
        Release();
    }

    private void Release()
    {
        Device.Dispose();
        if (_ownsIoThreads)
        {
            foreach (IoThread thread in _ioThreads)
            {
                thread.Dispose();
            }
        }
    }
}
