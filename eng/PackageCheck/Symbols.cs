using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text;

namespace PackageCheck;

/// <summary>
/// The symbols package of a .nupkg: X.snupkg next to it, with a portable PDB for each
/// lib/&lt;tfm&gt;/*.dll that has SourceLink (when built in a clone of a hosted repository) and only /_/ (deterministic) document paths, and
/// each dll's debug directory naming its PDB without the build machine's path.
/// </summary>
internal static class Symbols
{
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");

    public static IEnumerable<string> Check(Package package, string directory, bool hosted)
    {
        var path = Path.Combine(directory, Path.ChangeExtension(package.FileName, ".snupkg"));
        if (!File.Exists(path))
        {
            yield return $"no symbols package {Path.GetFileName(path)} next to it";
            yield break;
        }
        var symbols = Package.Open(path);
        foreach (var dll in package.LibAssemblies)
        {
            foreach (var problem in CheckCodeView(dll, package.Files[dll]))
            {
                yield return problem;
            }
            var pdb = dll[..^".dll".Length] + ".pdb";
            if (!symbols.Files.TryGetValue(pdb, out var content))
            {
                yield return $"{symbols.FileName} has no {pdb}";
                continue;
            }
            foreach (var problem in CheckPdb(pdb, content, hosted))
            {
                yield return problem;
            }
        }
    }

    private static IEnumerable<string> CheckCodeView(string dll, byte[] image)
    {
        using var pe = new PEReader(new MemoryStream(image));
        var codeView = pe.ReadDebugDirectory().Where(e => e.Type == DebugDirectoryEntryType.CodeView).ToList();
        if (codeView.Count == 0)
        {
            return [$"{dll} names no PDB (no CodeView debug directory entry)"];
        }
        var pdbPath = pe.ReadCodeViewDebugDirectoryData(codeView[0]).Path;
        return IsBuildMachinePath(pdbPath) ? [$"{dll} names its PDB by the build machine's path {pdbPath} (build with ContinuousIntegrationBuild=true)"] : [];
    }

    private static List<string> CheckPdb(string pdb, byte[] content, bool hosted)
    {
        var problems = new List<string>();
        MetadataReaderProvider provider;
        try
        {
            provider = MetadataReaderProvider.FromPortablePdbStream(new MemoryStream(content));
        }
        catch (BadImageFormatException e)
        {
            return [$"{pdb} is not a portable PDB: {e.Message}"];
        }
        using (provider)
        {
            var reader = provider.GetMetadataReader();
            var json = reader.GetCustomDebugInformation(EntityHandle.ModuleDefinition)
                .Select(reader.GetCustomDebugInformation)
                .Where(c => reader.GetGuid(c.Kind) == SourceLinkKind)
                .Select(c => Encoding.UTF8.GetString(reader.GetBlobBytes(c.Value)))
                .FirstOrDefault() ?? "";
            if (hosted && (!json.Contains("\"documents\"", StringComparison.Ordinal) || !json.Contains("http", StringComparison.Ordinal)))
            {
                problems.Add($"{pdb} has no SourceLink (documents mapped to URLs)");
            }
            var absolute = reader.Documents.Select(h => reader.GetString(reader.GetDocument(h).Name)).Where(IsBuildMachinePath).ToList();
            if (absolute.Count > 0)
            {
                problems.Add($"{pdb} names {absolute.Count} source document(s) by the build machine's path, e.g. {absolute[0]} (build with ContinuousIntegrationBuild=true)");
            }
        }
        return problems;
    }

    /// <summary>A rooted path that is not under the deterministic root /_/.</summary>
    private static bool IsBuildMachinePath(string path) =>
        (path.StartsWith('/') && !path.StartsWith("/_/", StringComparison.Ordinal)) || (path.Length > 2 && path[1] == ':');
}
