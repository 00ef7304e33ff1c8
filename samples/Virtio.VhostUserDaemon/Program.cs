using System;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
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

/// <summary>Serves one virtio device over vhost-user until SIGINT or SIGTERM.</summary>
internal static class Program
{
    private const ushort MaxRingSize = 1024;

    public static int Main(string[] args)
    {
        var socket = new Option<string>("--socket") { Description = "Path of the vhost-user Unix socket to listen on (replaced if it exists, removed on exit).", Required = true };
        var blk = new Option<string?>("--blk") { Description = BlkSpec.Help };
        var net = new Option<string?>("--net") { Description = "Serve a virtio-net device bridged to a tap: tap=NAME (created if missing)." };
        var verbose = new Option<bool>("--verbose") { Description = "Log every vhost-user message (debug level)." };
        var allowUid = new Option<string[]>("--allow-uid")
        {
            Description = "Accept front ends running under these user ids only (SO_PEERCRED, checked on connect; others are disconnected with a logged reason): UID[,UID...], repeatable. Default: any user that can open the socket, which is created mode 0600 (its owner only).",
        };
        var allowUnsealed = new Option<bool>("--allow-unsealed-memory")
        {
            Description = "Map shared guest memory that is not sealed against shrinking (F_SEAL_SHRINK): QEMU's memory-backend-file (hugetlbfs, tmpfs) or memory-backend-memfd with seal=off. Only for a trusted front end: truncating such a file under the mapping kills the daemon (SIGBUS). Default: refused.",
        };
        var root = new RootCommand("vhost-user back end for Virtio for .NET devices: exactly one of --blk or --net. Serves one front end at a time and accepts the next when it disconnects.")
        {
            socket, blk, net, verbose, allowUid, allowUnsealed,
        };
        root.SetAction(result =>
        {
            try
            {
                if (!TryParseUserIds(result.GetValue(allowUid), out uint[]? userIds, out string? error))
                {
                    Console.Error.WriteLine(error);
                    return 2;
                }

                var access = new Access(userIds, result.GetValue(allowUnsealed));
                return Run(result.GetValue(socket)!, result.GetValue(blk), result.GetValue(net), result.GetValue(verbose), access);
            }
            catch (Exception exception) when (exception is System.IO.IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException)
            {
                // A missing image, a tap we may not create, a socket path we cannot bind.
                Console.Error.WriteLine($"vhost-user daemon: {exception.Message}");
                return 1;
            }
        });
        return root.Parse(args).Invoke();
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

    private static int Run(string socketPath, string? blkText, string? netText, bool verbose, Access access)
    {
        if ((blkText is null) == (netText is null))
        {
            Console.Error.WriteLine("Give exactly one of --blk or --net.");
            return 2;
        }

        using ILoggerFactory loggers = LoggerFactory.Create(builder => builder
            .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; })
            .SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information));
        ILogger logger = loggers.CreateLogger("vhost-user-daemon");

        Func<IGuestMemory, VirtioDevice> createDevice;
        IDisposable? owned;
        IoThread[] ioThreads;
        if (blkText is not null)
        {
            if (!BlkSpec.TryParse(blkText, out BlkSpec? spec, out string? error))
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            // Ring i and its completions run on ioThreads[i % n]: one call-fd write per wake-up. With
            // io_uring each I/O thread submits to and reaps its own ring: no other thread per request.
            ioThreads = StartIoThreads(spec!.IoThreads > 0 ? spec.IoThreads : Math.Min(spec.Queues, Environment.ProcessorCount), logger);
            spec.Disk.ApplyPolling(ioThreads);
            IBlockBackend backend = spec.Disk.Open(ioThreads, loggers.CreateLogger("blk-backend"));
            owned = new Owned(backend is IDisposable file ? [file, .. ioThreads] : [.. ioThreads]);
            // Ring sizes are the front end's choice (QEMU's queue-size, up to 1024): offer that much.
            var options = new BlockDeviceOptions { QueueCount = spec.Queues, QueueSize = MaxRingSize, ReadOnly = spec.Disk.File.ReadOnly, IoThreads = ioThreads };
            createDevice = memory => new BlockDevice(memory, backend, options, loggers.CreateLogger("virtio-blk"));
            logger.LogInformation(
                "virtio-blk on {Path} ({Capacity} bytes, {Queues} queue(s) on {IoThreads} I/O thread(s), engine {Engine}{Direct}{ReadOnly}, polling up to {PollUs} us)",
                spec.Disk.Path ?? "null", backend.Capacity, spec.Queues, ioThreads.Length, DiskKeys.EngineOf(backend),
                spec.Disk.File.Direct ? ", O_DIRECT" : "", spec.Disk.File.ReadOnly ? ", read-only" : "", spec.Disk.PollMicroseconds);
        }
        else
        {
            if (!netText!.StartsWith("tap=", StringComparison.Ordinal) || netText.Length == 4)
            {
                Console.Error.WriteLine("--net expects tap=NAME.");
                return 2;
            }

            var tap = TapNetBackend.Create(netText[4..]);
            ioThreads = StartIoThreads(1, logger);
            owned = new Owned(tap, ioThreads[0]);
            // The front end runs the control queue itself: the back end serves the rx/tx pair only.
            var options = new NetDeviceOptions { ControlQueue = false, QueueSize = MaxRingSize, IoThreads = ioThreads };
            createDevice = memory => new NetDevice(memory, [tap], options, loggers.CreateLogger("virtio-net"));
            logger.LogInformation("virtio-net on tap {Tap}", netText[4..]);
        }

        using (owned)
        using (var server = new VhostUserServer(socketPath, createDevice, logger, ioThreads) { AllowedUserIds = access.UserIds, AllowUnsealedMemory = access.AllowUnsealedMemory })
        using (var stop = new CancellationTokenSource())
        {
            if (access.UserIds is not null)
            {
                logger.LogInformation("front ends accepted from user id(s) {UserIds} only", string.Join(",", access.UserIds));
            }

            Action<PosixSignalContext> onSignal = context =>
            {
                context.Cancel = true;
                logger.LogInformation("{Signal}: stopping", context.Signal);
                stop.Cancel();
            };
            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, onSignal);
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, onSignal);
            Task serving = server.RunAsync(stop.Token);
            serving.GetAwaiter().GetResult();
            (server.Device as IDisposable)?.Dispose();
        }

        logger.LogInformation("stopped; socket {Socket} removed", socketPath);
        return 0;
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
