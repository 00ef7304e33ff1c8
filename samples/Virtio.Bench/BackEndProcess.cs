using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;

namespace Virtio.Bench;

/// <summary>A back-end child process (our daemon or qemu-storage-daemon) on its own socket; killed on dispose or when the bench exits.</summary>
internal sealed class BackEndProcess : IDisposable
{
    private static readonly List<Process> s_live = [];
    private readonly Process _process;

    static BackEndProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
    }

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
        lock (s_live)
        {
            s_live.Add(_process);
        }
    }

    public string Name { get; }

    public string SocketPath { get; }

    public int ProcessId => _process.Id;

    public static BackEndProcess Ours(string daemonDll, string image, string socketPath) =>
        new("ours", socketPath, "dotnet", [daemonDll, "--socket", socketPath, "--blk", $"{image},queues=1"]);

    public static BackEndProcess QemuStorageDaemon(string name, string aio, string image, string socketPath, string node = "file") =>
        new(name, socketPath, "qemu-storage-daemon",
        [
            "--blockdev", node == "null" ? "driver=null-co,node-name=f,size=268435456" : $"driver=file,node-name=f,filename={image},aio={aio},locking=off",
            "--export", $"type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path={socketPath},writable=on",
        ]);

    public void Dispose()
    {
        Kill(_process);
        lock (s_live)
        {
            s_live.Remove(_process);
        }

        _process.Dispose();
        File.Delete(SocketPath);
    }

    private static void KillAll()
    {
        lock (s_live)
        {
            foreach (Process process in s_live)
            {
                Kill(process);
            }
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }
}
