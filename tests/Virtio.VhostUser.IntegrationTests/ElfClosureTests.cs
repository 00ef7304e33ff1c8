using System;
using System.IO;
using System.Linq;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// samples/linux-guest/elf-closure.py against small staged roots built with gcc: each test is a
/// rule of glibc's ld.so search that a naive resolver (one search path for all, the host's
/// loader, the first file of the name) gets wrong. Needs gcc and python3; no QEMU.
/// </summary>
public sealed class ElfClosureTests
{
    private const string Default = "default:/lib/x86_64-linux-gnu,/usr/lib/x86_64-linux-gnu,/lib,/usr/lib";
    private const string Runpath = "-Wl,--enable-new-dtags";
    private const string Rpath = "-Wl,--disable-new-dtags";

    [Fact]
    public void Runpath_OriginOfExecutableBehindAbsoluteSymlink_IsTheResolvedDirectory()
    {
        var stage = FakeStage.Create("elf-origin");
        stage.Library("/opt/app/lib/libalpha.so.1.0.0", "libalpha.so.1");
        stage.Symlink("/opt/app/lib/libalpha.so.1", "libalpha.so.1.0.0");
        stage.Executable("/opt/app/bin/app", "/opt/app/lib/libalpha.so.1", Runpath, "-Wl,-rpath,$ORIGIN/../lib");
        stage.Symlink("/usr/bin/app", "/opt/app/bin/app"); // absolute: re-rooted under the stage

        string[] found = Resolved(stage.Resolve("/usr/bin/app"));

        Assert.Contains("libalpha.so.1\t/opt/app/bin/../lib/libalpha.so.1\t/opt/app/lib/libalpha.so.1.0.0", found);
        Assert.Contains("libc.so.6\t/lib/x86_64-linux-gnu/libc.so.6\t/lib/x86_64-linux-gnu/libc.so.6", found);
        Assert.Contains("/lib64/ld-linux-x86-64.so.2\t/lib64/ld-linux-x86-64.so.2\t/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", found);
    }

    [Fact]
    public void Runpath_OfALibrary_FindsItsDepsButTheExecutablesRunpathDoesNotHelpIt()
    {
        var stage = FakeStage.Create("elf-runpath-not-inherited");
        stage.Library("/opt/y/libbeta.so.1", "libbeta.so.1");
        stage.Library("/opt/x/libgamma.so.1", "libgamma.so.1");
        stage.Library("/opt/x/libalpha.so.1", "libalpha.so.1", "/opt/y/libbeta.so.1", "/opt/x/libgamma.so.1", Runpath, "-Wl,-rpath,/opt/y");
        stage.Executable("/usr/bin/app", "/opt/x/libalpha.so.1", Runpath, "-Wl,-rpath,/opt/x");

        var (exit, found, err) = stage.Resolve("/usr/bin/app");

        Assert.Equal(1, exit);
        Assert.Contains("libalpha.so.1\t/opt/x/libalpha.so.1\t/opt/x/libalpha.so.1", found);
        Assert.Contains("libbeta.so.1\t/opt/y/libbeta.so.1\t/opt/y/libbeta.so.1", found);
        Assert.StartsWith($"elf-closure: /opt/x/libalpha.so.1 needs libgamma.so.1: not found in RUNPATH:/opt/y {Default}; " +
            "install package libgamma1 (guessed from the soname by Debian policy 8.1)", Assert.Single(err));
    }

    [Fact]
    public void Rpath_OfTheExecutable_IsInheritedByItsLibraries()
    {
        var stage = FakeStage.Create("elf-rpath-inherited");
        stage.Library("/opt/r/libbeta.so.1", "libbeta.so.1");
        stage.Library("/opt/r/libalpha.so.1", "libalpha.so.1", "/opt/r/libbeta.so.1");
        stage.Executable("/usr/bin/app", "/opt/r/libalpha.so.1", Rpath, "-Wl,-rpath,/opt/r");

        string[] found = Resolved(stage.Resolve("/usr/bin/app"));

        Assert.Contains("libbeta.so.1\t/opt/r/libbeta.so.1\t/opt/r/libbeta.so.1", found);
    }

    [Fact]
    public void Rpath_IgnoredForARequesterWithRunpath_ButStillInheritedPastIt()
    {
        // app (RPATH /opt/r) -> alpha (RUNPATH /opt/s) -> beta (neither) -> gamma in /opt/r;
        // alpha -> delta in /opt/r. alpha's RUNPATH turns off every RPATH for its own needs; for
        // beta's, only alpha's own RPATH is skipped and app's still counts (cache_rpath).
        var stage = FakeStage.Create("elf-rpath-runpath");
        stage.Library("/opt/r/libgamma.so.1", "libgamma.so.1");
        stage.Library("/opt/r/libdelta.so.1", "libdelta.so.1");
        stage.Library("/opt/s/libbeta.so.1", "libbeta.so.1", "/opt/r/libgamma.so.1");
        stage.Library("/opt/r/libalpha.so.1", "libalpha.so.1", "/opt/s/libbeta.so.1", "/opt/r/libdelta.so.1", Runpath, "-Wl,-rpath,/opt/s");
        stage.Executable("/usr/bin/app", "/opt/r/libalpha.so.1", Rpath, "-Wl,-rpath,/opt/r");

        var (exit, found, err) = stage.Resolve("/usr/bin/app");

        Assert.Equal(1, exit);
        Assert.Contains("libbeta.so.1\t/opt/s/libbeta.so.1\t/opt/s/libbeta.so.1", found);
        Assert.Contains("libgamma.so.1\t/opt/r/libgamma.so.1\t/opt/r/libgamma.so.1", found);
        Assert.StartsWith($"elf-closure: /opt/r/libalpha.so.1 needs libdelta.so.1: not found in RUNPATH:/opt/s {Default}; ", Assert.Single(err));
    }

    [Fact]
    public void Rpath_OfAnObjectThatAlsoHasRunpath_IsNotInherited()
    {
        // app has RPATH and RUNPATH $ORIGIN/../r; alpha (neither) needs beta in r. app's RUNPATH is
        // app's own, and its RPATH does not count for alpha because app has a RUNPATH.
        var stage = FakeStage.Create("elf-rpath-and-runpath");
        stage.Library("/opt/app/r/libbeta.so.1", "libbeta.so.1");
        stage.Library("/opt/app/r/libalpha.so.1", "libalpha.so.1", "/opt/app/r/libbeta.so.1");
        stage.Executable("/opt/app/bin/app", "/opt/app/r/libalpha.so.1", Rpath, "-Wl,-rpath,$ORIGIN/../r");
        string beta = "libbeta.so.1\t/opt/app/bin/../r/libbeta.so.1\t/opt/app/r/libbeta.so.1";
        Assert.Contains(beta, Resolved(stage.Resolve("/opt/app/bin/app"))); // the control: RPATH alone
        Assert.Contains($"libbeta.so.1 => {stage.Root}/opt/app/bin/../r/libbeta.so.1 ", string.Join('\n', ListOnHost(stage).Out), StringComparison.Ordinal);

        stage.AddRunpathEqualToRpath("/opt/app/bin/app");
        var (exit, found, err) = stage.Resolve("/opt/app/bin/app");

        Assert.Equal(1, exit);
        Assert.Contains("libalpha.so.1\t/opt/app/bin/../r/libalpha.so.1\t/opt/app/r/libalpha.so.1", found);
        Assert.DoesNotContain(beta, found);
        Assert.StartsWith($"elf-closure: /opt/app/bin/../r/libalpha.so.1 needs libbeta.so.1: not found in {Default}; ", Assert.Single(err));
        Assert.Contains("libbeta.so.1: cannot open shared object file", string.Join('\n', ListOnHost(stage).Err), StringComparison.Ordinal);
    }

    [Fact]
    public void Runpath_Absolute_IsResolvedInsideTheRoot()
    {
        // The librados case: RUNPATH /usr/lib/x86_64-linux-gnu/ceph, a directory only the stage has.
        const string Private = "/usr/lib/x86_64-linux-gnu/private";
        var stage = FakeStage.Create("elf-absolute-runpath");
        stage.Library($"{Private}/libcommon.so.2.0.0", "libcommon.so.2");
        stage.Symlink($"{Private}/libcommon.so.2", "libcommon.so.2.0.0");
        stage.Library("/usr/lib/x86_64-linux-gnu/libstore.so.2", "libstore.so.2", $"{Private}/libcommon.so.2", Runpath, "-Wl,-rpath," + Private);
        stage.Executable("/usr/bin/app", "/usr/lib/x86_64-linux-gnu/libstore.so.2");

        string[] found = Resolved(stage.Resolve("/usr/bin/app"));

        Assert.Contains("libstore.so.2\t/usr/lib/x86_64-linux-gnu/libstore.so.2\t/usr/lib/x86_64-linux-gnu/libstore.so.2", found);
        Assert.Contains($"libcommon.so.2\t{Private}/libcommon.so.2\t{Private}/libcommon.so.2.0.0", found);
    }

    [Fact]
    public void LdSoConf_IncludedConfFile_DirectoryIsSearched()
    {
        var stage = FakeStage.Create("elf-ld-so-conf");
        stage.WriteFile("/etc/ld.so.conf", "# as Debian's\ninclude /etc/ld.so.conf.d/*.conf\n");
        stage.WriteFile("/etc/ld.so.conf.d/app.conf", "/opt/conf/lib\n");
        stage.Library("/opt/conf/lib/libalpha.so.1", "libalpha.so.1");
        stage.Executable("/usr/bin/app", "/opt/conf/lib/libalpha.so.1");

        string[] found = Resolved(stage.Resolve("/usr/bin/app"));

        Assert.Contains("libalpha.so.1\t/opt/conf/lib/libalpha.so.1\t/opt/conf/lib/libalpha.so.1", found);
    }

    [Fact]
    public void Host_LibraryOnlyTheHostHas_IsReportedUnresolvedWithAPackageHint()
    {
        Assert.True(File.Exists("/lib/x86_64-linux-gnu/libm.so.6"), "the host has no libm.so.6: this test would prove nothing");
        var stage = FakeStage.Create("elf-host-unused");
        stage.Executable("/usr/bin/app", "-lm"); // libm.so.6 is not staged

        var (exit, found, err) = stage.Resolve("/usr/bin/app");

        Assert.Equal(1, exit);
        Assert.DoesNotContain(found, l => l.StartsWith("libm.so.6", StringComparison.Ordinal));
        Assert.Contains("libc.so.6\t/lib/x86_64-linux-gnu/libc.so.6\t/lib/x86_64-linux-gnu/libc.so.6", found);
        Assert.StartsWith($"elf-closure: /usr/bin/app needs libm.so.6: not found in {Default}; " +
            "install package libm6 (guessed from the soname by Debian policy 8.1)", Assert.Single(err));
    }

    [Fact]
    public void SearchPath_WrongClassAndWrongMachineFilesFirst_AreSkippedButANonElfFileStopsTheSearch()
    {
        var stage = FakeStage.Create("elf-skip");
        stage.Library("/opt/app/b/libalpha.so.1", "libalpha.so.1");
        Patched("/opt/app/a32/libalpha.so.1", 4, 1); // EI_CLASS = ELFCLASS32
        Patched("/opt/app/arm/libalpha.so.1", 18, 183); // e_machine = EM_AARCH64
        stage.Executable("/opt/app/bin/app", "/opt/app/b/libalpha.so.1", Runpath, "-Wl,-rpath,$ORIGIN/../a32:$ORIGIN/../arm:$ORIGIN/../b");

        string[] found = Resolved(stage.Resolve("/opt/app/bin/app"));

        Assert.Contains("libalpha.so.1\t/opt/app/bin/../b/libalpha.so.1\t/opt/app/b/libalpha.so.1", found);
        // The same on the host's loader ($ORIGIN paths are valid there too).
        var listed = ListOnHost(stage);
        Assert.Equal(0, listed.Exit);
        Assert.Contains($"libalpha.so.1 => {stage.Root}/opt/app/bin/../b/libalpha.so.1 ", string.Join('\n', listed.Out), StringComparison.Ordinal);

        // A file that is not ELF at all is an error for ld.so ("invalid ELF header"), not skipped.
        stage.WriteFile("/opt/app/a32/libalpha.so.1", new string('x', 100));
        var (exit, _, err) = stage.Resolve("/opt/app/bin/app");
        Assert.Equal(1, exit);
        Assert.Equal("elf-closure: /opt/app/bin/app needs libalpha.so.1: /opt/app/bin/../a32/libalpha.so.1: invalid ELF header", Assert.Single(err));
        var host = ListOnHost(stage);
        Assert.NotEqual(0, host.Exit);
        Assert.Contains("invalid ELF header", string.Join('\n', host.Err), StringComparison.Ordinal);

        void Patched(string guest, int offset, byte value)
        {
            byte[] bytes = File.ReadAllBytes(stage.HostPath("/opt/app/b/libalpha.so.1"));
            bytes[offset] = value;
            File.WriteAllBytes(stage.HostPath(guest), bytes);
        }
    }

    [Fact]
    public void AlreadyLoaded_ASonameMatchingALaterNeed_IsReusedWithoutSearching()
    {
        // app needs libq.so.1 (its RUNPATH) and then /opt/p/liba.so.1.0.0 (a path: the soname of
        // the stub app was linked with); libq needs liba.so.1, on no search path of libq's, which
        // only the SONAME of the object loaded from that path answers (breadth-first: app's needs first).
        var stage = FakeStage.Create("elf-soname");
        stage.Library("/opt/p/liba.so.1.0.0", "liba.so.1");
        stage.Library("/build/stub.so", "/opt/p/liba.so.1.0.0");
        stage.Library("/opt/q/libq.so.1", "libq.so.1", "/opt/p/liba.so.1.0.0");
        stage.Executable("/usr/bin/app", "/opt/q/libq.so.1", "/build/stub.so", Runpath, "-Wl,-rpath,/opt/q");

        string[] found = Resolved(stage.Resolve("/usr/bin/app"));

        Assert.Contains("libq.so.1\t/opt/q/libq.so.1\t/opt/q/libq.so.1", found);
        Assert.Contains("/opt/p/liba.so.1.0.0\t/opt/p/liba.so.1.0.0\t/opt/p/liba.so.1.0.0", found);
        Assert.DoesNotContain(found, l => l.StartsWith("liba.so.1\t", StringComparison.Ordinal));
    }

    [Fact]
    public void Unresolved_WithOwners_SaysWhereTheFileIsElseGuessesThePackage()
    {
        var stage = FakeStage.Create("elf-owners");
        stage.Library("/opt/elsewhere/libhidden.so.1", "libhidden.so.1");
        stage.Library("/build/libfoo-1.2.so.3", "libfoo-1.2.so.3");
        stage.Executable("/usr/bin/app", "/opt/elsewhere/libhidden.so.1", "/build/libfoo-1.2.so.3", Runpath, "-Wl,-rpath,/opt/u");
        File.Delete(stage.HostPath("/build/libfoo-1.2.so.3"));
        string owners = Path.Combine(stage.Work, "owners.tsv");
        File.WriteAllText(owners, "/usr/bin/app\tapp\n/opt/elsewhere/libhidden.so.1\tlibhidden-pkg\n");

        var (exit, _, err) = stage.Resolve("--owners", owners, "/usr/bin/app");

        Assert.Equal(1, exit);
        Assert.Equal(2, err.Length);
        Assert.Equal($"elf-closure: /usr/bin/app needs libhidden.so.1: not found in RUNPATH:/opt/u {Default}; " +
            "present at /opt/elsewhere/libhidden.so.1 from package libhidden-pkg but not on the search path", err[0]);
        Assert.StartsWith($"elf-closure: /usr/bin/app needs libfoo-1.2.so.3: not found in RUNPATH:/opt/u {Default}; " +
            "install package libfoo-1.2-3 (guessed from the soname by Debian policy 8.1)", err[1]);
    }

    [Fact]
    public void Usage_MissingOrNonElfObject_Exits2SayingWhich()
    {
        var stage = FakeStage.Create("elf-usage");
        stage.WriteFile("/usr/bin/script", "#!/bin/sh\necho this is a script, not an ELF object\n");

        var missing = stage.Resolve("/usr/bin/nothing");
        var script = stage.Resolve("/usr/bin/script");

        Assert.Equal(2, missing.Exit);
        Assert.Equal($"elf-closure: /usr/bin/nothing: not found in {stage.Root}", Assert.Single(missing.Err));
        Assert.Equal(2, script.Exit);
        Assert.StartsWith("elf-closure: /usr/bin/script: not ELF", Assert.Single(script.Err));
    }

    /// <summary>The lines of a run that must have resolved everything.</summary>
    private static string[] Resolved((int Exit, string[] Out, string[] Err) run)
    {
        Assert.True(run.Exit == 0, $"exit {run.Exit}:\n{string.Join('\n', run.Err)}");
        Assert.Empty(run.Err);
        Assert.Equal(run.Out.Length, run.Out.Distinct().Count());
        return run.Out;
    }

    /// <summary>The host's ld.so tracing /opt/app/bin/app of the stage (loads, runs nothing).</summary>
    private static (int Exit, string[] Out, string[] Err) ListOnHost(FakeStage stage) =>
        FakeStage.Run("/lib64/ld-linux-x86-64.so.2", new[] { "--list", stage.HostPath("/opt/app/bin/app") });
}
