using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using System.Xml.Linq;

namespace PackageCheck;

/// <summary>
/// Proves each check can fail: breaks a copy of one of the folder's packages in each way (next
/// to copies of the others, which its dependencies may need) and expects the problem reported.
/// </summary>
internal static class SelfTest
{
    private const string SymbolsDropped = "the symbols package dropped";

    public static int Run(string directory, string globalPackages, bool hosted)
    {
        var paths = Directory.GetFiles(directory, "*.nupkg").Order(StringComparer.Ordinal).ToList();
        // The target: a package with a lib assembly; the fake local dependency: another package it does not reference.
        var packages = paths.Select(Package.Open).ToList();
        var target = packages.FindIndex(p => p.LibAssemblies.Any());
        if (target < 0)
        {
            Console.WriteLine($"self-test: no package with a lib/<tfm>/*.dll in {directory}");
            return 1;
        }
        var package = packages[target];
        var dll = package.LibAssemblies.First();
        var xml = dll[..^".dll".Length] + ".xml";
        var readme = package.Metadata?.Child("readme")?.Value.Trim() ?? "README.md";
        var references = Assemblies.Read(package.Files[dll]).References;
        var unused = packages.FirstOrDefault(p => p != package && !p.IsTool && p.LibAssemblies.Any() && p.LibAssemblies.All(d => !references.Contains(Assemblies.Read(p.Files[d]).Name)));

        // A NuGet package, in a global packages folder of the real one's packages and one more, whose assembly the target does not reference.
        const string FakeId = "Fake.Unused";
        var cases = new List<(string What, Func<string, byte[], byte[]?> Edit, string Expected, bool FakeGlobal)>
        {
            ("the readme file dropped", (path, content) => path == readme ? null : content, "which is not in the package", false),
            ("the <readme> element dropped", EditNuspec(m => m.Child("readme")?.Remove()), "no <readme> in the nuspec", false),
            ("the XML documentation dropped", (path, content) => path == xml ? null : content, "has no XML documentation file", false),
            ("the XML documentation emptied", (path, content) => path == xml ? [] : content, $"{xml} is empty", false),
            ("the XML documentation broken", (path, content) => path == xml ? Encoding.UTF8.GetBytes("<doc><members>") : content, "is not well-formed", false),
            ("a dependency on Newtonsoft.Json", EditNuspec(m => AddDependency(m, "Newtonsoft.Json", "13.0.3")), "depends on Newtonsoft.Json 13.0.3, but", false),
            ("the LICENSE file dropped", (path, content) => path == "LICENSE" ? null : content, "no LICENSE file", false),
            ("the version without its commit suffix", EditNuspec(m => m.Child("version")!.Value = "0.1.0-preview"), "has no per-commit suffix", false),
            ("the repository commit dropped", EditNuspec(m => m.Child("repository")?.Attribute("commit")?.Remove()), "<repository> has no commit", false),
        };
        if (hosted)
        {
            cases.Add(("the repository url dropped", EditNuspec(m => m.Child("repository")?.Attribute("url")?.Remove()), "<repository> has no url", false));
        }
        cases.Add((SymbolsDropped, (_, content) => content, "no symbols package", false));
        if (unused != null)
        {
            cases.Add(($"a dependency on {unused.Id}, not referenced", EditNuspec(m => AddDependency(m, unused.Id, "[0.1.0-preview, )")),
                $"depends on {unused.Id} [0.1.0-preview, ), but no assembly in lib", false));
            cases.Add(($"a dependency on the NuGet package {FakeId} ({unused.Id}'s assembly), not referenced", EditNuspec(m => AddDependency(m, FakeId, "[1.0, )")),
                $"depends on {FakeId} [1.0, ), but no assembly in lib", true));
        }

        var failed = 0;
        var root = Directory.CreateTempSubdirectory("package-check-");
        try
        {
            var fakeGlobal = root.CreateSubdirectory("global-packages");
            foreach (var folder in Directory.GetDirectories(globalPackages))
            {
                Directory.CreateSymbolicLink(Path.Combine(fakeGlobal.FullName, Path.GetFileName(folder)), folder);
            }
            if (unused != null)
            {
                var lib = Directory.CreateDirectory(Path.Combine(fakeGlobal.FullName, FakeId.ToLowerInvariant(), "1.0.0", "lib", "net10.0"));
                var fakeDll = unused.LibAssemblies.First();
                File.WriteAllBytes(Path.Combine(lib.FullName, Path.GetFileName(fakeDll)), unused.Files[fakeDll]);
            }
            var baseline = Checker.CheckDirectory(directory, globalPackages, hosted: hosted).Problems.ToHashSet();
            foreach (var (what, edit, expected, useFakeGlobal) in cases)
            {
                var dir = root.CreateSubdirectory(Guid.NewGuid().ToString("N"));
                foreach (var path in paths.Where(p => p != paths[target]))
                {
                    File.Copy(path, Path.Combine(dir.FullName, Path.GetFileName(path)));
                }
                foreach (var symbols in Directory.GetFiles(directory, "*.snupkg"))
                {
                    File.Copy(symbols, Path.Combine(dir.FullName, Path.GetFileName(symbols)));
                }
                Rewrite(paths[target], Path.Combine(dir.FullName, package.FileName), edit);
                if (what == SymbolsDropped)
                {
                    File.Delete(Path.Combine(dir.FullName, Path.ChangeExtension(package.FileName, ".snupkg")));
                }
                // Exactly one problem more than the unbroken packages have: the expected one.
                var added = Checker.CheckDirectory(dir.FullName, useFakeGlobal ? fakeGlobal.FullName : globalPackages, hosted: hosted).Problems.Where(p => !baseline.Contains(p)).ToList();
                var ok = added.Count == 1 && added[0].StartsWith(package.FileName + ": ", StringComparison.Ordinal) && added[0].Contains(expected, StringComparison.Ordinal);
                failed += ok ? 0 : 1;
                Console.WriteLine(ok
                    ? $"ok: with {what}: {added[0]}"
                    : $"FAILED: {package.FileName} with {what}: expected one new problem with \"{expected}\", got: {string.Join(" | ", added)}");
            }
        }
        finally
        {
            root.Delete(recursive: true);
        }
        if (unused == null)
        {
            Console.WriteLine($"(no package in {directory} that {package.FileName} does not reference: the unused local dependency case did not run)");
        }
        if (!hosted)
        {
            Console.WriteLine("(--unhosted: the repository url case did not run)");
        }
        Console.WriteLine($"self-test: {cases.Count - failed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static Func<string, byte[], byte[]?> EditNuspec(Action<XElement> edit) => (path, content) =>
    {
        if (path.Contains('/', StringComparison.Ordinal) || !path.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase))
        {
            return content;
        }
        using var input = new MemoryStream(content);
        var nuspec = XDocument.Load(input);
        edit(nuspec.Root!.Child("metadata")!);
        using var output = new MemoryStream();
        nuspec.Save(output);
        return output.ToArray();
    };

    private static void AddDependency(XElement metadata, string id, string version)
    {
        var ns = metadata.Name.Namespace;
        var dependencies = metadata.Child("dependencies") ?? new XElement(ns + "dependencies");
        if (dependencies.Parent == null)
        {
            metadata.Add(dependencies);
        }
        var group = dependencies.Child("group") ?? dependencies;
        group.Add(new XElement(ns + "dependency", new XAttribute("id", id), new XAttribute("version", version)));
    }

    /// <summary>A copy of the package with each file through the edit (null drops the file).</summary>
    private static void Rewrite(string source, string destination, Func<string, byte[], byte[]?> edit)
    {
        var package = Package.Open(source);
        using var zip = ZipFile.Open(destination, ZipArchiveMode.Create);
        foreach (var (path, content) in package.Files)
        {
            var edited = edit(path, content);
            if (edited != null)
            {
                using var stream = zip.CreateEntry(path).Open();
                stream.Write(edited);
            }
        }
    }
}
