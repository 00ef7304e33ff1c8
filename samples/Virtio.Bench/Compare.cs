using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Virtio.Bench;

/// <summary>
/// `compare`: our daemon, qemu-storage-daemon aio=threads and aio=io_uring on the same image, rounds
/// interleaved (every back end runs each case once per round), then a Markdown table of medians.
/// </summary>
internal static class Compare
{
    public static int Run(string? image, int sizeMiB, double seconds, int rounds, int[] queueDepths, IoPattern[] patterns, NotifyMode[] modes, int blockSize, string? daemonDll)
    {
        string dll = daemonDll ?? FindDaemonDll();
        if (!File.Exists(dll))
        {
            Console.Error.WriteLine($"compare: our daemon is not at {dll}; build samples/Virtio.VhostUserDaemon or give --daemon-dll.");
            return 2;
        }

        string directory = Directory.CreateTempSubdirectory("virtio-bench-").FullName;
        bool ownImage = image is null;
        image ??= Path.Combine("/dev/shm", $"virtio-bench-{Environment.ProcessId}.img");
        try
        {
            if (ownImage)
            {
                CreateImage(image, sizeMiB);
            }

            using var ours = BackEndProcess.Ours(dll, image, Path.Combine(directory, "ours.sock"));
            using var threads = BackEndProcess.QemuStorageDaemon("qsd-threads", "threads", image, Path.Combine(directory, "threads.sock"));
            using var uring = BackEndProcess.QemuStorageDaemon("qsd-io_uring", "io_uring", image, Path.Combine(directory, "uring.sock"));
            BackEndProcess[] backEnds = [ours, threads, uring];
            var results = new Dictionary<(NotifyMode, int, IoPattern, string), List<BlkResult>>();
            for (int round = 0; round < rounds; round++)
            {
                foreach (NotifyMode mode in modes)
                {
                    foreach (int qd in queueDepths)
                    {
                        foreach (IoPattern pattern in patterns)
                        {
                            // Rotate the order each round so no back end always runs first (warm caches, turbo).
                            for (int i = 0; i < backEnds.Length; i++)
                            {
                                BackEndProcess b = backEnds[(i + round) % backEnds.Length];
                                var options = new BlkOptions(b.SocketPath, qd, blockSize, pattern, seconds, mode, Verify: false, SizeMiB: 0, BackendPid: b.ProcessId);
                                BlkResult r = BlkLoad.Run(options, TextWriter.Null);
                                Console.Error.WriteLine($"round {round + 1}/{rounds} {Program.Name(mode)} qd{qd} {Program.Name(pattern)} {b.Name}: {r.Iops:F0} IOPS, backend {r.BackendCpuMicroseconds:F1} us/req{(r.Errors > 0 ? $", {r.Errors} ERRORS" : "")}");
                                Add(results, (mode, qd, pattern, b.Name), r);
                            }
                        }
                    }
                }
            }

            Console.WriteLine($"{rounds} rounds of {seconds} s, bs {blockSize}, one queue, image {(ownImage ? $"{sizeMiB} MiB in /dev/shm" : image)}; IOPS and back-end CPU us/request are medians of rounds.");
            Console.WriteLine();
            Console.WriteLine("| mode | qd | rw | ours IOPS | QSD threads IOPS | QSD io_uring IOPS | ours/io_uring | ours CPU us/req | threads CPU us/req | io_uring CPU us/req |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
            foreach (NotifyMode mode in modes)
            {
                foreach (int qd in queueDepths)
                {
                    foreach (IoPattern pattern in patterns)
                    {
                        double o = Median(results[(mode, qd, pattern, "ours")], r => r.Iops);
                        double t = Median(results[(mode, qd, pattern, "qsd-threads")], r => r.Iops);
                        double u = Median(results[(mode, qd, pattern, "qsd-io_uring")], r => r.Iops);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"| {Program.Name(mode)} | {qd} | {Program.Name(pattern)} | {o:F0} | {t:F0} | {u:F0} | {o / u:F2} | {Median(results[(mode, qd, pattern, "ours")], r => r.BackendCpuMicroseconds):F1} | {Median(results[(mode, qd, pattern, "qsd-threads")], r => r.BackendCpuMicroseconds):F1} | {Median(results[(mode, qd, pattern, "qsd-io_uring")], r => r.BackendCpuMicroseconds):F1} |"));
                    }
                }
            }

            return 0;
        }
        finally
        {
            if (ownImage)
            {
                File.Delete(image);
            }

            Directory.Delete(directory, recursive: true);
        }
    }

    private static void Add(Dictionary<(NotifyMode, int, IoPattern, string), List<BlkResult>> results, (NotifyMode, int, IoPattern, string) key, BlkResult r)
    {
        if (!results.TryGetValue(key, out List<BlkResult>? list))
        {
            results[key] = list = [];
        }

        list.Add(r);
    }

    private static double Median(List<BlkResult> results, Func<BlkResult, double> value)
    {
        double[] sorted = results.Select(value).Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>A 256 MiB (by default) image of non-zero data, so reads touch real pages.</summary>
    private static void CreateImage(string path, int sizeMiB)
    {
        using FileStream file = File.Create(path);
        byte[] chunk = new byte[1 << 20];
        new Random(7).NextBytes(chunk);
        for (int i = 0; i < sizeMiB; i++)
        {
            file.Write(chunk);
        }
    }

    /// <summary>samples/Virtio.VhostUserDaemon/bin/CONFIG/TFM/ next to samples/Virtio.Bench/bin/CONFIG/TFM/.</summary>
    internal static string FindDaemonDll()
    {
        var ours = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = ours.Name;
        string configuration = ours.Parent!.Name;
        string samples = ours.Parent.Parent!.Parent!.Parent!.FullName;
        return Path.Combine(samples, "Virtio.VhostUserDaemon", "bin", configuration, tfm, "Virtio.VhostUserDaemon.dll");
    }
}
