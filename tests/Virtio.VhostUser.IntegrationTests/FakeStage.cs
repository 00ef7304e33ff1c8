using System;
using System.Collections.Generic;
using System.ComponentModel;
using System.Diagnostics;
using System.IO;
using System.Linq;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// A small staged root for samples/linux-guest/elf-closure.py: ELF objects built with gcc at
/// guest paths, the host's libc.so.6 and ld.so copied in (lib64's ld.so an absolute symlink, as in
/// Debian), and a way to run the resolver on it.
/// </summary>
internal sealed class FakeStage
{
    private const string Multiarch = "/lib/x86_64-linux-gnu";
    private int _sources;

    private FakeStage(string work)
    {
        Work = work;
        Root = Path.Combine(work, "stage");
        Directory.CreateDirectory(Root);
    }

    public string Work { get; }

    public string Root { get; }

    public static FakeStage Create(string name)
    {
        var stage = new FakeStage(TestWorkDir.Create(name));
        foreach (string lib in new[] { "libc.so.6", "ld-linux-x86-64.so.2" })
        {
            // File.Copy follows the host's symlinks: the stage gets the file itself.
            File.Copy(Path.Combine(Multiarch, lib), stage.HostPath($"{Multiarch}/{lib}"));
        }

        stage.Symlink("/lib64/ld-linux-x86-64.so.2", $"{Multiarch}/ld-linux-x86-64.so.2");
        return stage;
    }

    /// <summary>Where the guest path <paramref name="guest"/> is on the host (parents created).</summary>
    public string HostPath(string guest)
    {
        string path = Root + guest;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        return path;
    }

    /// <summary>A shared library at <paramref name="guest"/> with <paramref name="soname"/>, linked
    /// against <paramref name="inputs"/> (staged guest paths, or gcc/ld options when they start with '-').</summary>
    public void Library(string guest, string soname, params string[] inputs) =>
        Gcc(guest, new[] { "-shared", "-fPIC", "-Wl,-soname," + soname }.Concat(inputs));

    /// <summary>An executable at <paramref name="guest"/>; inputs as for <see cref="Library"/>.</summary>
    public void Executable(string guest, params string[] inputs) => Gcc(guest, inputs);

    /// <summary>Gives the executable at <paramref name="guest"/> a DT_RUNPATH equal to its DT_RPATH
    /// by turning its DT_DEBUG entry into one (GNU ld writes only one of the two).</summary>
    public void AddRunpathEqualToRpath(string guest)
    {
        const long DtRpath = 15, DtDebug = 21, DtRunpath = 29, PtDynamic = 2;
        string path = HostPath(guest);
        byte[] elf = File.ReadAllBytes(path);
        long phoff = BitConverter.ToInt64(elf, 32);
        int phentsize = BitConverter.ToUInt16(elf, 54), phnum = BitConverter.ToUInt16(elf, 56);
        int ph = Enumerable.Range(0, phnum).Select(i => (int)phoff + (i * phentsize))
            .Single(p => BitConverter.ToUInt32(elf, p) == PtDynamic);
        int start = (int)BitConverter.ToInt64(elf, ph + 8), size = (int)BitConverter.ToInt64(elf, ph + 32);
        int[] entries = Enumerable.Range(0, size / 16).Select(i => start + (i * 16)).ToArray();
        int rpath = entries.Single(e => BitConverter.ToInt64(elf, e) == DtRpath);
        int debug = entries.Single(e => BitConverter.ToInt64(elf, e) == DtDebug);
        BitConverter.GetBytes(DtRunpath).CopyTo(elf, debug);
        Array.Copy(elf, rpath + 8, elf, debug + 8, 8); // the same string
        File.WriteAllBytes(path, elf);
    }

    public void Symlink(string guest, string target) => File.CreateSymbolicLink(HostPath(guest), target);

    public void WriteFile(string guest, string text) => File.WriteAllText(HostPath(guest), text);

    /// <summary>Runs elf-closure.py --root STAGE with <paramref name="arguments"/>.</summary>
    public (int Exit, string[] Out, string[] Err) Resolve(params string[] arguments) =>
        Run("python3", new[] { Path.Combine(RepoPaths.LinuxGuestDir, "elf-closure.py"), "--root", Root }.Concat(arguments));

    /// <summary>Runs a command to its end (60 s at most); gcc and python3 must exist.</summary>
    public static (int Exit, string[] Out, string[] Err) Run(string file, IEnumerable<string> arguments)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in arguments)
        {
            psi.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"cannot run {file} ({e.Message}): the ELF closure tests need gcc and python3", e);
        }

        using (process)
        {
            var stderr = process.StandardError.ReadToEndAsync();
            string stdout = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(60_000))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{file} did not end within 60 s");
            }

            return (process.ExitCode, Lines(stdout), Lines(stderr.GetAwaiter().GetResult()));
        }
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private void Gcc(string guest, IEnumerable<string> inputs)
    {
        // Each object defines one function so that no two are the same file; NEEDED entries come
        // from the inputs alone (--no-as-needed records them though nothing is called).
        string source = Path.Combine(Work, $"src{++_sources}.c");
        File.WriteAllText(source, $"int f{_sources}(void) {{ return 0; }}\nint main(void) {{ return 0; }}\n");
        var args = new List<string> { "-o", HostPath(guest), source, "-Wl,--no-as-needed" };
        args.AddRange(inputs.Select(i => i.StartsWith('-') ? i : Root + i));
        var (exit, _, err) = Run("gcc", args);
        if (exit != 0)
        {
            throw new InvalidOperationException($"gcc {string.Join(' ', args)} failed:\n{string.Join('\n', err)}");
        }
    }
}
