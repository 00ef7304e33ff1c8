using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;

namespace Virtio.Bench;

/// <summary>A back-end child process (our daemon or qemu-storage-daemon) on its own socket; killed on dispose or when the bench exits.</summary>
internal sealed class BackEndProcess : IDisposable
{
    private readonly Process _process;

    private BackEndProcess(string name, string socketPath, string file, IEnumerable<string> arguments)
    {
        Name = name;
        SocketPath = socketPath;
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new IOException($"could not start {file}");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line && !line.Contains(" info:", StringComparison.OrdinalIgnoreCase))
            {
                Console.Error.WriteLine($"[{Name}] {line}");
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        LiveChildren.Add(_process);
    }

    public string Name { get; }

    public string SocketPath { get; }

    public int ProcessId => _process.Id;

    /// <summary>Our daemon serving <paramref name="blkSpec"/> (the whole value of its --blk).</summary>
    public static BackEndProcess Ours(string daemonDll, string blkSpec, string socketPath) =>
        new("ours", socketPath, "dotnet", [daemonDll, "--socket", socketPath, "--blk", blkSpec]);

    /// <summary>
    /// qemu-storage-daemon exporting the node <paramref name="blockdev"/> describes (node-name f) over
    /// vhost-user-blk: in its main loop, or on an iothread with poll-max-ns <paramref name="ioThreadPollMaxNs"/> when given.
    /// </summary>
    public static BackEndProcess QemuStorageDaemon(string name, string blockdev, string socketPath, int? ioThreadPollMaxNs)
    {
        List<string> arguments = [];
        string onIoThread = "";
        if (ioThreadPollMaxNs is int pollMaxNs)
        {
            arguments.AddRange(["--object", $"iothread,id=iot0,poll-max-ns={pollMaxNs}"]);
            onIoThread = ",iothread=iot0";
        }

        arguments.AddRange(["--blockdev", blockdev, "--export", $"type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path={socketPath},writable=on{onIoThread}"]);
        return new(name, socketPath, "qemu-storage-daemon", arguments);
    }

    /// <summary>A file node on <paramref name="image"/> with <c>aio=</c><paramref name="aio"/> (threads or io_uring).</summary>
    public static string FileNode(string image, string aio) => $"driver=file,node-name=f,filename={image},aio={aio},locking=off";

    /// <summary>A null-co node of <paramref name="bytes"/>; reads leave the buffer untouched (read-zeroes=off), as our null disk does.</summary>
    public static string NullNode(long bytes) => $"driver=null-co,node-name=f,size={bytes},read-zeroes=off";

    public void Dispose()
    {
        LiveChildren.Release(_process);

        _process.Dispose();
        File.Delete(SocketPath);
    }
}
