using System;
using System.Globalization;
using System.IO;

namespace Virtio.Blk.Backends;

/// <summary>
/// A file disk could not take its lock on the image (<see cref="FileBackendOptions.LockImage"/>):
/// another open of the same image holds a lock that conflicts, a writer's against any other open, or
/// a reader's against a writer. <see cref="HolderProcessId"/> names the process when this one can see it.
/// </summary>
public sealed class ImageLockedException : IOException
{
    /// <summary>Creates an exception with no image named.</summary>
    public ImageLockedException()
    {
    }

    /// <summary>Creates an exception with a message only.</summary>
    /// <param name="message">What failed.</param>
    public ImageLockedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and an inner exception.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The cause.</param>
    public ImageLockedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for <paramref name="imagePath"/> and the holder found, if any.</summary>
    /// <param name="imagePath">The image as it was given to the open.</param>
    /// <param name="readOnly">Whether the open asked for a shared (read-only) lock rather than an exclusive one.</param>
    /// <param name="holderProcessId">The process holding the conflicting lock, or null when it cannot be seen from here.</param>
    /// <param name="holderName">Its command name (/proc/PID/comm), or null.</param>
    public ImageLockedException(string imagePath, bool readOnly, int? holderProcessId, string? holderName)
        : base(Describe(imagePath, readOnly, holderProcessId, holderName))
    {
        ImagePath = imagePath;
        HolderProcessId = holderProcessId;
        HolderName = holderName;
    }

    /// <summary>The image that is locked, or null.</summary>
    public string? ImagePath { get; }

    /// <summary>The process holding the conflicting lock, or null when it is not known (another user's process, another namespace, another host over NFS).</summary>
    public int? HolderProcessId { get; }

    /// <summary>The holder's command name, or null.</summary>
    public string? HolderName { get; }

    private static string Describe(string path, bool readOnly, int? pid, string? name)
    {
        string holder = pid is int id
            ? string.Create(CultureInfo.InvariantCulture, $"process {id}{(name is null ? "" : $" ({name})")}")
            : "another process";
        return readOnly
            ? $"{path} is locked for writing by {holder}: a read-only open takes a shared lock, which a writer's excludes"
            : $"{path} is locked by {holder}: a read-write open takes an exclusive lock, so one writer at a time has the image";
    }
}
