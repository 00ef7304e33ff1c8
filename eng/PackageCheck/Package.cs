using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Xml.Linq;

namespace PackageCheck;

/// <summary>A .nupkg read into memory: its nuspec metadata and its files by path.</summary>
internal sealed class Package
{
    private Package(string fileName, XElement? metadata, Dictionary<string, byte[]> files)
    {
        FileName = fileName;
        Metadata = metadata;
        Files = files;
    }

    public string FileName { get; }

    /// <summary>The nuspec's &lt;metadata&gt;, or null when the package has no nuspec.</summary>
    public XElement? Metadata { get; }

    public string Id => Metadata?.Child("id")?.Value.Trim() ?? FileName;

    public Dictionary<string, byte[]> Files { get; }

    /// <summary>Whether the nuspec's package type is DotnetTool.</summary>
    public bool IsTool => Metadata?.Child("packageTypes")?.Children("packageType").Any(t => t.Attribute("name")?.Value == "DotnetTool") == true;

    /// <summary>The lib/&lt;tfm&gt;/*.dll paths.</summary>
    public IEnumerable<string> LibAssemblies => Files.Keys.Where(IsLibAssembly).Order(StringComparer.Ordinal);

    public static Package Open(string path)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.OrdinalIgnoreCase);
        using (var zip = ZipFile.OpenRead(path))
        {
            foreach (var entry in zip.Entries.Where(e => !e.FullName.EndsWith('/')))
            {
                using var stream = entry.Open();
                using var copy = new MemoryStream();
                stream.CopyTo(copy);
                files[Uri.UnescapeDataString(entry.FullName)] = copy.ToArray();
            }
        }
        var nuspec = files.FirstOrDefault(f => !f.Key.Contains('/', StringComparison.Ordinal) && f.Key.EndsWith(".nuspec", StringComparison.OrdinalIgnoreCase));
        XElement? metadata = null;
        if (nuspec.Value != null)
        {
            using var stream = new MemoryStream(nuspec.Value);
            metadata = XDocument.Load(stream).Root?.Child("metadata");
        }
        return new Package(Path.GetFileName(path), metadata, files);
    }

    /// <summary>"net10.0" of "lib/net10.0/X.dll".</summary>
    public static string TargetFrameworkOf(string libPath) => libPath.Split('/')[1];

    private static bool IsLibAssembly(string path)
    {
        var parts = path.Split('/');
        return parts.Length == 3 && parts[0] == "lib" && parts[2].EndsWith(".dll", StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>Assembly metadata through System.Reflection.Metadata.</summary>
internal static class Assemblies
{
    /// <summary>The assembly's own name and the names of the assemblies it references.</summary>
    public static (string Name, HashSet<string> References) Read(byte[] image)
    {
        using var pe = new PEReader(new MemoryStream(image));
        var reader = pe.GetMetadataReader();
        var references = new HashSet<string>(
            reader.AssemblyReferences.Select(h => reader.GetString(reader.GetAssemblyReference(h).Name)),
            StringComparer.OrdinalIgnoreCase);
        return (reader.GetString(reader.GetAssemblyDefinition().Name), references);
    }
}

internal static class XmlExtensions
{
    /// <summary>The child elements of that local name, whatever the nuspec's namespace.</summary>
    public static IEnumerable<XElement> Children(this XContainer parent, string localName) =>
        parent.Elements().Where(e => e.Name.LocalName == localName);

    public static XElement? Child(this XContainer parent, string localName) => parent.Children(localName).FirstOrDefault();
}
