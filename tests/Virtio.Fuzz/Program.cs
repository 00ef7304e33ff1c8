using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using SharpFuzz;

namespace Virtio.Fuzz;

/// <summary>
/// The fuzzing host. <c>list</c> prints the targets; <c>fuzz T</c> serves target T to afl-fuzz
/// (eng/fuzz.sh starts it); <c>replay T FILE|DIR...</c> runs inputs once each outside AFL++ and
/// prints what each threw (triage: a crash file from findings/default/crashes); <c>seeds DIR</c>
/// writes the seed corpora (tests/Virtio.Fuzz/Corpus/&lt;target&gt;/ were made by it).
/// </summary>
internal static class Program
{
    private const int MaxInput = 1 << 20;
    private const int MapSize = 1 << 16; // AFL's default map, the size SharpFuzz instruments for

    private static int Main(string[] args)
    {
        switch (args)
        {
            case ["list" or "--list"]:
                foreach (string name in FuzzTargets.Names)
                {
                    Console.WriteLine(name);
                }

                return 0;
            case ["fuzz", string name]:
                return Fuzz(name);
            case ["replay", string name, .. var paths] when paths.Length > 0:
                return Replay(name, paths);
            case ["seeds", string directory]:
                SeedCorpus.WriteAll(directory);
                return 0;
            default:
                Console.Error.WriteLine("usage: Virtio.Fuzz list | fuzz TARGET | replay TARGET FILE|DIR... | seeds DIR");
                return 2;
        }
    }

    /// <summary>
    /// Serves one target to afl-fuzz. SharpFuzz's in-process <see cref="Fuzzer.Run(Action{Stream})"/>
    /// is AFL++ persistent mode: one .NET process (started, JIT-compiled and set up once) runs input
    /// after input, each costing only the target's own work. Fuzzer.OutOfProcess.Run adds a child
    /// process and a pipe round trip per input (it exists to survive StackOverflowException, which
    /// our targets do not recurse deep enough to raise), and the libFuzzer mode needs
    /// libfuzzer-dotnet, which Debian does not ship; so in-process Run gives the most executions per
    /// second. The targets reset their state before each input, so persistence does not leak one
    /// input into the next.
    /// </summary>
    private static int Fuzz(string name)
    {
        GiveInstrumentationAMap();
        using IFuzzTarget target = FuzzTargets.Create(name);
        byte[] buffer = new byte[MaxInput];
        target.Host(() => Fuzzer.Run(stream => target.Run(buffer.AsSpan(0, ReadAll(stream, buffer)))));
        return 0;
    }

    /// <summary>
    /// Instrumented code counts every edge it takes in the map <c>Trace.SharedMem</c> points at, which
    /// <see cref="Fuzzer.Run(Action{Stream})"/> sets to afl-fuzz's shared memory only when it starts.
    /// A target is set up (instrumented code runs) before that: until then the edges go to a map of
    /// our own, which is never freed (the instrumented code may still hold it).
    /// </summary>
    private static void GiveInstrumentationAMap()
    {
        unsafe
        {
            // SAFETY: the map is MapSize bytes, the size the instrumentation indexes into (it masks
            // every edge id to the AFL map size), and it lives until the process ends.
            SharpFuzz.Common.Trace.SharedMem = (byte*)NativeMemory.AllocZeroed(MapSize);
        }
    }

    private static int Replay(string name, string[] paths)
    {
        var files = new List<string>();
        foreach (string path in paths)
        {
            if (Directory.Exists(path))
            {
                string[] inDirectory = Directory.GetFiles(path);
                Array.Sort(inDirectory, StringComparer.Ordinal);
                files.AddRange(inDirectory);
            }
            else
            {
                files.Add(path);
            }
        }

        using IFuzzTarget target = FuzzTargets.Create(name);
        int failed = 0;
        target.Host(() =>
        {
            foreach (string file in files)
            {
                try
                {
                    target.Run(File.ReadAllBytes(file));
                    Console.WriteLine($"ok: {file}");
                }
                catch (Exception exception)
                {
                    failed++;
                    Console.WriteLine($"FAILED: {file}");
                    Console.WriteLine(exception);
                }
            }
        });
        Console.WriteLine($"replay: target={name} inputs={files.Count} failed={failed}");
        return failed == 0 ? 0 : 1;
    }

    private static int ReadAll(Stream stream, byte[] buffer)
    {
        int total = 0, read;
        while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0)
        {
            total += read;
        }

        return total;
    }
}
