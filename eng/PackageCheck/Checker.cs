using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;

namespace PackageCheck;

/// <summary>
/// Checks the packages of a folder: each has its README, the Apache-2.0 licence (expression and
/// LICENSE file), a version with the per-commit suffix, a repository URL and commit, an XML
/// documentation file next to each lib/&lt;tfm&gt;/*.dll, a symbols package with SourceLink and no
/// build-machine paths (<see cref="Symbols"/>), and only dependencies whose assemblies its
/// assemblies reference.
/// </summary>
internal sealed class Checker
{
    private readonly Dictionary<string, Package> _local;
    private readonly string _globalPackages;

    private readonly string _directory;
    private readonly bool _release;
    private readonly bool _hosted;

    private Checker(IEnumerable<Package> local, string globalPackages, string directory, bool release, bool hosted)
    {
        _directory = directory;
        _release = release;
        _hosted = hosted;
        _local = local.GroupBy(p => p.Id, StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.First(), StringComparer.OrdinalIgnoreCase);
        _globalPackages = globalPackages;
    }

    /// <summary>One line per problem, each naming the package; and how many packages were read.</summary>
    /// <param name="directory">The folder of .nupkg files and their .snupkg symbol packages.</param>
    /// <param name="globalPackages">The NuGet global packages folder, where dependencies are looked up.</param>
    /// <param name="release">Expect release versions (no suffix) instead of preview.g&lt;commit&gt;.</param>
    /// <param name="hosted">The packages were built in a clone whose origin is a hosted repository, so
    /// the repository URL and SourceLink are required; without one the SDK has no URL to map sources
    /// to, and only the commit and the deterministic paths are checked.</param>
    public static (List<string> Problems, int Packages) CheckDirectory(string directory, string globalPackages, bool release = false, bool hosted = true)
    {
        var packages = Directory.GetFiles(directory, "*.nupkg").Order(StringComparer.Ordinal).Select(Package.Open).ToList();
        var checker = new Checker(packages, globalPackages, directory, release, hosted);
        var problems = packages.SelectMany(p => checker.Check(p).Select(problem => $"{p.FileName}: {problem}")).ToList();
        if (packages.Count == 0)
        {
            problems.Add($"{directory}: no .nupkg files");
        }
        return (problems, packages.Count);
    }

    private IEnumerable<string> Check(Package package)
    {
        if (package.Metadata == null)
        {
            yield return "no .nuspec with <metadata> at the package root";
            yield break;
        }
        var common = CheckReadme(package).Concat(CheckLicense(package)).Concat(CheckVersion(package, _release)).Concat(CheckRepository(package, _hosted));
        // A .NET tool (the daemon) is a program: no lib/ assemblies, documentation or symbols package to check.
        var problems = package.IsTool ? common : common.Concat(CheckDocumentation(package)).Concat(Symbols.Check(package, _directory, _hosted)).Concat(CheckDependencies(package));
        foreach (var problem in problems)
        {
            yield return problem;
        }
    }

    private static IEnumerable<string> CheckReadme(Package package)
    {
        var readme = package.Metadata!.Child("readme")?.Value.Trim().Replace('\\', '/').TrimStart('/');
        if (string.IsNullOrEmpty(readme))
        {
            yield return "no <readme> in the nuspec";
        }
        else if (!package.Files.TryGetValue(readme, out var content))
        {
            yield return $"the nuspec's <readme> is {readme}, which is not in the package";
        }
        else if (content.Length == 0)
        {
            yield return $"the readme {readme} is empty";
        }
    }

    private static IEnumerable<string> CheckLicense(Package package)
    {
        if (package.Metadata!.Child("license")?.Value.Trim() != "Apache-2.0")
        {
            yield return "the nuspec's <license> is not the expression Apache-2.0";
        }
        if (!package.Files.TryGetValue("LICENSE", out var content) || !Encoding.UTF8.GetString(content).Contains("Apache License", StringComparison.Ordinal))
        {
            yield return "no LICENSE file with the Apache License text at the package root";
        }
    }

    /// <summary>0.1.0-preview.g&lt;10 hex digits of the commit&gt; (Directory.Build.targets), or 0.1.0 for a release.</summary>
    private static IEnumerable<string> CheckVersion(Package package, bool release)
    {
        var version = package.Metadata!.Child("version")?.Value.Trim() ?? "";
        var pattern = release ? @"^\d+\.\d+\.\d+$" : @"^\d+\.\d+\.\d+-preview\.g[0-9a-f]{10}$";
        if (!Regex.IsMatch(version, pattern))
        {
            yield return release
                ? $"the version {version} is not a release version (MAJOR.MINOR.PATCH)"
                : $"the version {version} has no per-commit suffix (-preview.g<10 hex digits of the commit>)";
        }
    }

    private static IEnumerable<string> CheckRepository(Package package, bool hosted)
    {
        var repository = package.Metadata!.Child("repository");
        if (hosted && string.IsNullOrWhiteSpace(repository?.Attribute("url")?.Value))
        {
            yield return "the nuspec's <repository> has no url (the clone needs an origin remote: PublishRepositoryUrl takes it from there)";
        }
        if (string.IsNullOrWhiteSpace(repository?.Attribute("commit")?.Value))
        {
            yield return "the nuspec's <repository> has no commit";
        }
    }

    private static IEnumerable<string> CheckDocumentation(Package package)
    {
        if (!package.LibAssemblies.Any())
        {
            yield return "no lib/<tfm>/*.dll";
        }
        foreach (var dll in package.LibAssemblies)
        {
            var xml = dll[..^".dll".Length] + ".xml";
            if (!package.Files.TryGetValue(xml, out var content))
            {
                yield return $"{dll} has no XML documentation file {xml}";
                continue;
            }
            if (content.Length == 0)
            {
                yield return $"the XML documentation file {xml} is empty";
                continue;
            }
            string? error;
            try
            {
                using var stream = new MemoryStream(content);
                var root = XDocument.Load(stream).Root!.Name.LocalName;
                error = root == "doc" ? null : $"the XML documentation file {xml} has the root <{root}>, not <doc>";
            }
            catch (XmlException e)
            {
                error = $"the XML documentation file {xml} is not well-formed: {e.Message}";
            }
            if (error != null)
            {
                yield return error;
            }
        }
    }

    private List<string> CheckDependencies(Package package)
    {
        // The references of the lib assemblies, by target framework.
        var references = new Dictionary<string, HashSet<string>>(StringComparer.OrdinalIgnoreCase);
        var all = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var problems = new List<string>();
        foreach (var dll in package.LibAssemblies)
        {
            try
            {
                var read = Assemblies.Read(package.Files[dll]).References;
                var tfm = Package.TargetFrameworkOf(dll);
                if (!references.TryGetValue(tfm, out var set))
                {
                    references[tfm] = set = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
                }
                set.UnionWith(read);
                all.UnionWith(read);
            }
            catch (Exception e) when (e is BadImageFormatException or InvalidOperationException)
            {
                problems.Add($"{dll} is not a readable .NET assembly: {e.Message}");
            }
        }
        var dependencies = package.Metadata!.Child("dependencies");
        if (dependencies == null)
        {
            return problems;
        }
        // A group's dependencies against the lib folder of its target framework (all of them when none matches).
        var groups = dependencies.Children("group").Select(g => (Tfm: g.Attribute("targetFramework")?.Value, Dependencies: g.Children("dependency")))
            .Append((Tfm: null, Dependencies: dependencies.Children("dependency")));
        foreach (var (tfm, group) in groups)
        {
            var used = tfm != null && references.TryGetValue(tfm, out var set) ? set : all;
            var where = tfm != null && references.ContainsKey(tfm) ? $"lib/{tfm}" : "lib";
            foreach (var dependency in group)
            {
                var id = dependency.Attribute("id")?.Value ?? "(no id)";
                var version = dependency.Attribute("version")?.Value ?? "";
                var (provided, error) = AssembliesOf(id, version);
                if (error != null)
                {
                    problems.Add($"depends on {id} {version}, but {error}");
                }
                else if (!provided.Overlaps(used))
                {
                    problems.Add($"depends on {id} {version}, but no assembly in {where} references its assemblies ({string.Join(", ", provided.Order(StringComparer.Ordinal))})");
                }
            }
        }
        return problems;
    }

    /// <summary>The assembly names a dependency provides: from this folder's package of that id, else from the NuGet global packages folder.</summary>
    private (HashSet<string> Names, string? Error) AssembliesOf(string id, string versionRange)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        if (_local.TryGetValue(id, out var local))
        {
            foreach (var dll in local.LibAssemblies)
            {
                names.Add(NameOf(local.Files[dll], dll));
            }
            return (names, names.Count == 0 ? $"the package {local.FileName} has no lib/<tfm>/*.dll" : null);
        }
        var version = MinimumVersion(versionRange);
        if (version == null)
        {
            return (names, "the version range has no lower bound to look the package up by");
        }
        var folder = Path.Combine(_globalPackages, id.ToLowerInvariant(), version);
        if (!Directory.Exists(folder))
        {
            return (names, $"it is neither a package of this folder nor in the NuGet global packages folder ({folder} is missing: restore first)");
        }
        foreach (var kind in new[] { "lib", "ref" })
        {
            var dir = Path.Combine(folder, kind);
            if (names.Count == 0 && Directory.Exists(dir))
            {
                foreach (var dll in Directory.GetDirectories(dir).SelectMany(tfm => Directory.GetFiles(tfm, "*.dll")))
                {
                    names.Add(NameOf(File.ReadAllBytes(dll), dll));
                }
            }
        }
        return (names, names.Count == 0 ? $"{folder} has no lib/<tfm>/*.dll nor ref/<tfm>/*.dll" : null);
    }

    private static string NameOf(byte[] image, string path)
    {
        try
        {
            return Assemblies.Read(image).Name;
        }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException)
        {
            return Path.GetFileNameWithoutExtension(path);
        }
    }

    /// <summary>The lower bound of a NuGet version range ("1.0", "[1.0.0, )", "[1.0.0]"), normalized as the global packages folder names it.</summary>
    internal static string? MinimumVersion(string range)
    {
        var lower = range.Trim().TrimStart('[', '(').Split(',')[0].TrimEnd(']', ')').Trim();
        if (lower.Length == 0)
        {
            return null;
        }
        var label = lower.IndexOfAny(['-', '+']);
        var (number, suffix) = label < 0 ? (lower, "") : (lower[..label], lower[label..].Split('+')[0]);
        var parts = number.Split('.').ToList();
        while (parts.Count < 3)
        {
            parts.Add("0");
        }
        if (parts.Count == 4 && parts[3] == "0")
        {
            parts.RemoveAt(3);
        }
        return (string.Join('.', parts.Select(p => int.TryParse(p, out var n) ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : p)) + suffix).ToLowerInvariant();
    }
}
