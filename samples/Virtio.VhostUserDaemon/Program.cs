using System;
using System.Collections.Generic;
using System.Net.Sockets;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Threading;
using Virtio.Net;
using Virtio.Net.Backends;
using Virtio.Samples;
using Virtio.VhostUser;

namespace Virtio.VhostUserDaemon;

/// <summary>Serves virtio devices over vhost-user, one socket each, until SIGINT or SIGTERM.</summary>
internal static class Program
{
    private const ushort MaxRingSize = 1024;
    private const int SigUsr1 = 10; // Linux

    public static int Main(string[] args)
    {
        var socket = new Option<string?>("--socket") { Description = "Path of the vhost-user Unix socket of the one device given without socket= (replaced if it exists, removed on exit)." };
        var blk = new Option<string[]>("--blk") { Description = BlkSpec.Help + " Repeatable: one device each, each with its own socket (socket=PATH; without it, --socket)." };
        var net = new Option<string[]>("--net") { Description = "Serve a virtio-net device bridged to a tap: tap=NAME[,socket=PATH] (the tap is created if missing). Repeatable, as --blk." };
        var config = new Option<string?>("--config") { Description = "A JSON file of devices, instead of or besides the flags: {\"blk\": [\"FILE,KEY...,socket=PATH\", ...], \"net\": [\"tap=NAME,socket=PATH\", ...]}, each string as the flag's value (docs/daemon.md)." };
        var verbose = new Option<bool>("--verbose") { Description = "Log every vhost-user message (debug level)." };
        var metrics = new Option<int?>("--metrics") { Description = "Export every instrument of the Virtio.Blk, Virtio.Net, Virtio.Core and Virtio.VhostUser meters (docs/metrics.md) to standard output every SECONDS seconds, with OpenTelemetry's console exporter.", HelpName = "SECONDS" };
        var allowUid = new Option<string[]>("--allow-uid")
        {
            Description = "Accept front ends running under these user ids only (SO_PEERCRED, checked on connect; others are disconnected with a logged reason): UID[,UID...], repeatable. Default: any user that can open the socket, which is created mode 0600 (its owner only).",
        };
        var allowUnsealed = new Option<bool>("--allow-unsealed-memory")
        {
            Description = "Map shared guest memory that is not sealed against shrinking (F_SEAL_SHRINK): QEMU's memory-backend-file (hugetlbfs, tmpfs) or memory-backend-memfd with seal=off. Only for a trusted front end: truncating such a file under the mapping kills the daemon (SIGBUS). Default: refused.",
        };
        var control = new Option<string?>("--control")
        {
            Description = "Path of a control socket (created mode 0600; with --allow-uid, those users only): one command a line, one reply line each (ok ... / error ...): 'resize NAME BYTES' grows the image file of blkN to BYTES (a multiple of 512; shrinking is refused) and tells the guest; 'reload' reads every file disk's size again, as SIGHUP does (docs/daemon.md).",
            HelpName = "PATH",
        };
        var root = new RootCommand("vhost-user back end for Virtio for .NET devices: one or more --blk and --net, each on its own socket. Each socket serves one front end at a time and accepts the next when it disconnects. SIGINT or SIGTERM stops; SIGUSR1 prints the per-device summary (requests, errors, bytes), which is also printed at exit; SIGHUP reads every file disk's size again and tells the guest of a change.")
        {
            socket, blk, net, config, verbose, metrics, allowUid, allowUnsealed, control,
        };
        root.SetAction(result =>
        {
            try
            {
                if (!TryParseUserIds(result.GetValue(allowUid), out uint[]? userIds, out string? error)
                    || !DeviceList.TryBuild(result.GetValue(blk), result.GetValue(net), result.GetValue(config), result.GetValue(socket), out DeviceList? devices, out error))
                {
                    Console.Error.WriteLine(error);
                    return 2;
                }

                if (result.GetValue(metrics) is <= 0)
                {
                    Console.Error.WriteLine("--metrics: SECONDS must be at least 1.");
                    return 2;
                }

                var access = new Access(userIds, result.GetValue(allowUnsealed));
                using MeterProvider? exporter = result.GetValue(metrics) is { } seconds ? MetricsExport.ToConsole(seconds) : null;
                return Run(devices!, result.GetValue(verbose), access, result.GetValue(control));
            }
            catch (Exception exception) when (exception is System.IO.IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException)
            {
                // A missing image, a tap we may not create, a socket path we cannot bind.
                Console.Error.WriteLine($"vhost-user daemon: {exception.Message}");
                return 1;
            }
        });
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // An unknown option or a value of the wrong type is a usage error, as a malformed --blk is:
            // System.CommandLine prints the errors and the help, and the exit status is 2 (docs/daemon.md).
            _ = parsed.Invoke();
            return 2;
        }

        return parsed.Invoke();
    }

    /// <summary>--allow-uid values: each a comma list of decimal user ids; null when none was given.</summary>
    private static bool TryParseUserIds(string[]? values, out uint[]? userIds, out string? error)
    {
        userIds = null;
        error = null;
        if (values is null || values.Length == 0)
        {
            return true;
        }

        var ids = new System.Collections.Generic.List<uint>();
        foreach (string value in values)
        {
            foreach (string part in value.Split(','))
            {
                if (!uint.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint id))
                {
                    error = $"--allow-uid: '{part}' is not a user id (UID[,UID...]).";
                    return false;
                }

                ids.Add(id);
            }
        }

        userIds = [.. ids];
        return true;
    }

    private static int Run(DeviceList devices, bool verbose, Access access, string? controlPath)
    {
        using ILoggerFactory loggers = LoggerFactory.Create(builder => builder
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
            .SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information));
        ILogger logger = loggers.CreateLogger("vhost-user-daemon");
        using var summary = new DeviceSummary();
        using SocketActivation activation = SocketActivation.FromEnvironment();
        var owned = new List<IDisposable>();
        var servers = new List<VhostUserServer>();
        var disks = new DiskResizer(logger);
        ControlSocket? controlSocket = null;
        try
        {
            for (int i = 0; i < devices.Blk.Count; i++)
            {
                (BlkSpec spec, string socketPath) = devices.Blk[i];
                servers.Add(CreateBlk($"blk{i}", spec, socketPath, activation.Take(socketPath), loggers, logger, access, owned, disks));
                summary.AddDevice($"blk{i}", "blk", socketPath);
            }

            for (int i = 0; i < devices.Net.Count; i++)
            {
                (string tapName, string socketPath) = devices.Net[i];
                servers.Add(CreateNet($"net{i}", tapName, socketPath, activation.Take(socketPath), loggers, logger, access, owned));
                summary.AddDevice($"net{i}", "net", socketPath);
            }

            foreach (string path in activation.Untaken)
            {
                logger.LogWarning("LISTEN_FDS: the inherited socket {Path} is no device's socket; closed", path);
            }

            activation.Dispose();
            if (access.UserIds is not null)
            {
                logger.LogInformation("front ends accepted from user id(s) {UserIds} only", string.Join(",", access.UserIds));
            }

            using var stop = new CancellationTokenSource();
            Action<PosixSignalContext> onSignal = context =>
            {
                context.Cancel = true;
                logger.LogInformation("{Signal}: stopping", context.Signal);
                stop.Cancel();
            };
            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, onSignal);
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, onSignal);
            using PosixSignalRegistration sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                _ = disks.RereadAll();
            });
            using PosixSignalRegistration sigusr1 = PosixSignalRegistration.Create((PosixSignal)SigUsr1, context =>
            {
                context.Cancel = true;
                summary.Write(Console.Out);
            });
            List<Task> running = servers.ConvertAll(server => server.RunAsync(stop.Token));
            if (controlPath is not null)
            {
                controlSocket = ControlSocket.Bind(controlPath, access.UserIds, disks, logger);
                running.Add(controlSocket.RunAsync(stop.Token));
            }

            Task.WhenAll(running).GetAwaiter().GetResult();
        }
        finally
        {
            controlSocket?.Dispose();

            // docs/architecture.md, "Ownership and shutdown order": each server (which disposes its
            // device), then what the devices used (backends, taps, I/O threads).
            foreach (VhostUserServer server in servers)
            {
                server.Dispose();
            }

            foreach (IDisposable item in owned)
            {
                item.Dispose();
            }
        }

        summary.Write(Console.Out);
        logger.LogInformation("stopped; of the socket(s) {Sockets}, those it bound are removed (inherited ones are their creator's)", string.Join(", ", devices.Sockets));
        return 0;
    }

    private static VhostUserServer CreateBlk(string name, BlkSpec spec, string socketPath, Socket? inherited, ILoggerFactory loggers, ILogger logger, Access access, List<IDisposable> owned, DiskResizer disks)
    {
        // Ring i and its completions run on ioThreads[i % n]: one call-fd write per wake-up. With
        // io_uring each I/O thread submits to and reaps its own ring: no other thread per request.
        IoThread[] ioThreads = StartIoThreads(spec.IoThreads > 0 ? spec.IoThreads : Math.Min(spec.Queues, Environment.ProcessorCount), logger);
        spec.Disk.ApplyPolling(ioThreads);
        IBlockBackend backend = spec.Disk.Open(ioThreads, loggers.CreateLogger("blk-backend"));
        owned.Add(new Owned(backend is IDisposable file ? [file, .. ioThreads] : [.. ioThreads]));

        // Ring sizes are the front end's choice (QEMU's queue-size, up to 1024): offer that much.
        var options = new BlockDeviceOptions { Name = name, QueueCount = spec.Queues, QueueSize = MaxRingSize, ReadOnly = spec.Disk.File.ReadOnly, IoThreads = ioThreads, OfferPackedRing = spec.Packed };
        ILogger deviceLogger = loggers.CreateLogger("virtio-blk");
        logger.LogInformation(
            "{Name}: virtio-blk on {Path} ({Capacity} bytes, {Queues} queue(s) on {IoThreads} I/O thread(s), engine {Engine}{Direct}{ReadOnly}{Packed}, polling up to {PollUs} us) at {Socket}{Inherited}",
            name, spec.Disk.Path ?? "null", backend.Capacity, spec.Queues, ioThreads.Length, DiskKeys.EngineOf(backend),
            spec.Disk.File.Direct ? ", O_DIRECT" : "", spec.Disk.File.ReadOnly ? ", read-only" : "", spec.Packed ? ", packed ring offered" : "", spec.Disk.PollMicroseconds, socketPath, inherited is null ? "" : " (inherited, LISTEN_FDS)");
        var server = new VhostUserServer(socketPath, memory => new BlockDevice(memory, backend, options, deviceLogger), logger, ioThreads)
        {
            AllowedUserIds = access.UserIds,
            AllowUnsealedMemory = access.AllowUnsealedMemory,
            ListeningSocket = inherited,
        };
        disks.Add(name, (BlockDevice)server.Device, backend, spec.Disk.Path, spec.Disk.File.ReadOnly);
        return server;
    }

    private static VhostUserServer CreateNet(string name, string tapName, string socketPath, Socket? inherited, ILoggerFactory loggers, ILogger logger, Access access, List<IDisposable> owned)
    {
        var tap = TapNetBackend.Create(tapName);
        IoThread[] ioThreads = StartIoThreads(1, logger);
        owned.Add(new Owned(tap, ioThreads[0]));

        // The front end runs the control queue itself: the back end serves the rx/tx pair only.
        var options = new NetDeviceOptions { Name = name, ControlQueue = false, QueueSize = MaxRingSize, IoThreads = ioThreads };
        ILogger deviceLogger = loggers.CreateLogger("virtio-net");
        logger.LogInformation("{Name}: virtio-net on tap {Tap} at {Socket}{Inherited}", name, tapName, socketPath, inherited is null ? "" : " (inherited, LISTEN_FDS)");
        return new VhostUserServer(socketPath, memory => new NetDevice(memory, [tap], options, deviceLogger), logger, ioThreads)
        {
            AllowedUserIds = access.UserIds,
            AllowUnsealedMemory = access.AllowUnsealedMemory,
            ListeningSocket = inherited,
        };
    }

    private static IoThread[] StartIoThreads(int count, ILogger logger)
    {
        var threads = new IoThread[Math.Max(1, count)];
        for (int i = 0; i < threads.Length; i++)
        {
            threads[i] = new IoThread($"vhost-io-{i}", logger);
            threads[i].Start();
        }

        return threads;
    }
}
