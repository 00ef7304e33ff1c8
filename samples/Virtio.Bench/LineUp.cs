using System;
using System.Collections.Generic;
using System.IO;

namespace Virtio.Bench;

/// <summary>
/// The back ends of one comparison, started on sockets in one directory: ours first, the reference
/// the ratios divide by (qemu-storage-daemon io_uring, or null-co) last. Disposing kills them all.
/// </summary>
internal sealed class LineUp : IDisposable
{
    private LineUp(BackEndProcess[] backEnds, string[] labels)
    {
        BackEnds = backEnds;
        Labels = labels;
    }

    /// <summary>The running back ends, ours at 0, the reference last.</summary>
    public BackEndProcess[] BackEnds { get; }

    /// <summary>Column labels, parallel to <see cref="BackEnds"/>.</summary>
    public string[] Labels { get; }

    public static LineUp Start(LineUpOptions o, string directory)
    {
        var started = new List<BackEndProcess>();
        var labels = new List<string>();
        try
        {
            started.Add(BackEndProcess.Ours(o.DaemonDll, o.OursSpec, Path.Combine(directory, "ours.sock")));
            labels.Add("ours");
            if (o.NullDisk)
            {
                started.Add(BackEndProcess.QemuStorageDaemon("qsd-null-co", BackEndProcess.NullNode(o.SizeBytes), Path.Combine(directory, "null-co.sock"), o.QsdIoThreadPollMaxNs));
                labels.Add("QSD null-co");
            }
            else
            {
                if (o.WithThreads)
                {
                    started.Add(BackEndProcess.QemuStorageDaemon("qsd-threads", BackEndProcess.FileNode(o.Image, "threads"), Path.Combine(directory, "threads.sock"), o.QsdIoThreadPollMaxNs));
                    labels.Add("QSD threads");
                }

                started.Add(BackEndProcess.QemuStorageDaemon("qsd-io_uring", BackEndProcess.FileNode(o.Image, "io_uring"), Path.Combine(directory, "uring.sock"), o.QsdIoThreadPollMaxNs));
                labels.Add("QSD io_uring");
            }

            return new LineUp([.. started], [.. labels]);
        }
        catch
        {
            foreach (BackEndProcess b in started)
            {
                b.Dispose();
            }

            throw;
        }
    }

    public void Dispose()
    {
        foreach (BackEndProcess b in BackEnds)
        {
            b.Dispose();
        }
    }
}
