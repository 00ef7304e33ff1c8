using System;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Virtio.VhostUser;

namespace Hosting;

/// <summary>
/// Serves one virtio-blk device over vhost-user while the host runs. Everything it creates it also
/// disposes, in the reverse order of creation: the server (its connection's rings stop and drain),
/// then the backend (the file), then the I/O threads the rings and the backend ran on.
/// </summary>
public sealed partial class VhostUserBlkService(IOptions<BlkServiceOptions> options, ILoggerFactory loggers) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger<VhostUserBlkService>();

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        BlkServiceOptions config = options.Value;
        var ioThreads = new IoThread[Math.Max(1, config.Queues)];
        for (int i = 0; i < ioThreads.Length; i++)
        {
            ioThreads[i] = new IoThread($"blk-io-{i}", _logger);
            ioThreads[i].Start();
        }

        try
        {
            IBlockBackend backend = BlockBackends.OpenFile(config.Path, new FileBackendOptions { ReadOnly = config.ReadOnly }, ioThreads, loggers.CreateLogger("blk-backend"));
            try
            {
                var device = new BlockDeviceOptions { QueueCount = config.Queues, QueueSize = 1024, IoThreads = ioThreads };
                await using var server = new VhostUserServer(config.Socket, memory => new BlockDevice(memory, backend, device, loggers.CreateLogger("virtio-blk")), loggers.CreateLogger("vhost-user"), ioThreads);
                LogServing(config.Path, backend.Capacity, config.Socket);

                // Returns once the token is cancelled (the host stops): the rings have stopped and the
                // socket file is removed. Then the server disposes its device, before the backend and
                // the I/O threads below (docs/architecture.md, "Ownership and shutdown order").
                await server.RunAsync(stoppingToken).ConfigureAwait(false);
            }
            finally
            {
                (backend as IDisposable)?.Dispose();
            }
        }
        finally
        {
            foreach (IoThread thread in ioThreads)
            {
                thread.Dispose();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "serving {Path} ({Capacity} bytes) on {Socket}")]
    private partial void LogServing(string path, ulong capacity, string socket);
}
