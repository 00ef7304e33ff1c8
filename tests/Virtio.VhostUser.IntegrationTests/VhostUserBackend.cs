using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>A vhost-user back end process listening on a Unix socket.</summary>
internal sealed class VhostUserBackend : IDisposable
{
    private readonly ChildProcess _process;

    private VhostUserBackend(ChildProcess process, string socketPath, IReadOnlyList<string> command)
    {
        _process = process;
        SocketPath = socketPath;
        Command = command;
    }

    public string SocketPath { get; }

    /// <summary>The command line, for reports.</summary>
    public IReadOnlyList<string> Command { get; }

    public IReadOnlyList<string> Log => _process.Lines;

    public bool HasExited => _process.HasExited;

    /// <summary>Waits, at most <paramref name="limit"/>, for a log line containing <paramref name="text"/>.</summary>
    public Task<bool> WaitForLineAsync(string text, TimeSpan limit, CancellationToken cancellationToken) =>
        _process.WaitForLineAsync(text, limit, cancellationToken);

    /// <summary>Starts a blk back end over a raw image and waits until it listens on
    /// <paramref name="workDir"/>/<paramref name="socketName"/>. With <paramref name="sharedImage"/> it opens the
    /// image without its lock (ours: <c>lock=off</c>; qemu-storage-daemon: <c>locking=off</c>), so a second
    /// back end may serve it at once: the two sides of a live migration.</summary>
    public static Task<VhostUserBackend> StartBlkAsync(BlkBackendKind kind, string workDir, string image, int queues,
        CancellationToken cancellationToken, string logName = "backend.log", IReadOnlyList<string>? extraArgs = null, string blkKeys = "",
        string socketName = "vhost-blk.sock", bool sharedImage = false)
    {
        string socket = Path.Combine(workDir, socketName);
        string[] command = kind switch
        {
            BlkBackendKind.Ours => [.. new[] { "dotnet", RepoPaths.DaemonDll, "--socket", socket, "--blk", $"{image},queues={queues}{blkKeys}{(sharedImage ? ",lock=off" : "")}" }, .. extraArgs ?? []],
            BlkBackendKind.QemuStorageDaemon => new[]
            {
                "qemu-storage-daemon",
                "--blockdev", $"driver=file,node-name=file0,filename={image},discard=unmap{(sharedImage ? ",locking=off" : "")}",
                "--blockdev", "driver=raw,node-name=disk0,file=file0,discard=unmap",
                "--export", $"type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path={socket},writable=on,num-queues={queues}",
            },
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        return StartAsync(command, socket, Path.Combine(workDir, logName), cancellationToken);
    }

    /// <summary>Starts our daemon as a net back end on tap <paramref name="tap"/> inside network
    /// namespace <paramref name="netns"/>.</summary>
    public static Task<VhostUserBackend> StartNetAsync(string workDir, string netns, string tap, CancellationToken cancellationToken)
    {
        string socket = Path.Combine(workDir, "vhost-net.sock");
        string[] command = { "ip", "netns", "exec", netns, "dotnet", RepoPaths.DaemonDll, "--socket", socket, "--net", $"tap={tap}" };
        return StartAsync(command, socket, Path.Combine(workDir, "backend.log"), cancellationToken);
    }

    private static async Task<VhostUserBackend> StartAsync(string[] command, string socket, string log, CancellationToken cancellationToken)
    {
        File.Delete(socket);
        var process = ChildProcess.Start(command, TimeSpan.FromMinutes(10), log);
        var backend = new VhostUserBackend(process, socket, command);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!File.Exists(socket))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                backend.Dispose();
                Assert.Fail($"back end did not listen on {socket}: {string.Join(' ', command)}\n{string.Join('\n', process.Lines)}");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        return backend;
    }

    /// <summary>SIGTERM, then the exit status (null when it had to be killed).</summary>
    public async Task<int?> StopAsync(CancellationToken cancellationToken)
    {
        if (_process.HasExited)
        {
            return await _process.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }

        _process.Signal("TERM");
        try
        {
            return await _process.WaitAsync(TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>Waits until the process has exited; returns its exit status.</summary>
    /// <exception cref="TimeoutException">It still runs after <paramref name="limit"/>.</exception>
    public Task<int> WaitForExitAsync(TimeSpan limit, CancellationToken cancellationToken) =>
        _process.WaitAsync(limit, cancellationToken);

    /// <summary>Sends <paramref name="signal"/> (TERM, KILL) to the back end itself.</summary>
    public void Signal(string signal) => _process.Signal(signal);

    public void Dispose() => _process.Dispose();
}
