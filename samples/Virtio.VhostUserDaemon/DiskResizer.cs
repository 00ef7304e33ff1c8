using System;
using System.Collections.Generic;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Virtio.Blk;
using Virtio.Blk.Backends;

namespace Virtio.VhostUserDaemon;

/// <summary>
/// The daemon's block devices whose size can change while they run (docs/daemon.md, "Resizing a
/// disk"): <see cref="RereadAll"/> (SIGHUP, the control socket's <c>reload</c>) reads every file
/// disk's size again; <see cref="Resize"/> (the control socket's <c>resize</c>) grows one image
/// file. Either way the device takes the new capacity and the front end gets CONFIG_CHANGE_MSG.
/// One change at a time; any thread.
/// </summary>
internal sealed class DiskResizer
{
    /// <summary>The largest size <see cref="Resize"/> accepts: 1 PiB.</summary>
    public const ulong MaxBytes = 1ul << 50;

    private readonly Dictionary<string, Disk> _disks = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly object _gate = new();

    public DiskResizer(ILogger logger) => _logger = logger;

    /// <summary>Adds a device; <paramref name="backend"/> is resizable when it is a file backend.</summary>
    public void Add(string name, BlockDevice device, IBlockBackend backend, string? path, bool readOnly)
    {
        Func<ulong>? refresh = backend switch
        {
            FileBlockBackend file => file.RefreshCapacity,
            IoUringBlockBackend uring => uring.RefreshCapacity,
            _ => null,
        };
        lock (_gate)
        {
            _disks.Add(name, new Disk(device, refresh, path, readOnly));
        }
    }

    /// <summary>Reads every file disk's size again and tells the devices whose size changed; one line for the log and the reply.</summary>
    public string RereadAll()
    {
        lock (_gate)
        {
            var parts = new List<string>();
            foreach ((string name, Disk disk) in _disks)
            {
                if (disk.Refresh is null)
                {
                    continue;
                }

                try
                {
                    ulong before = disk.Device.CapacitySectors;
                    disk.Refresh();
                    ulong after = disk.Device.UpdateCapacity();
                    parts.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {after * BlockDevice.SectorSize}{(after != before ? " (changed)" : "")}"));
                }
                catch (System.IO.IOException e)
                {
                    parts.Add($"{name} unreadable ({e.Message})");
                }
            }

            string summary = parts.Count == 0 ? "no file disks" : string.Join(", ", parts);
            _logger.LogInformation("disk sizes read again: {Summary}", summary);
            return summary;
        }
    }

    /// <summary>
    /// Grows the image file of <paramref name="name"/> to <paramref name="bytesText"/> bytes (decimal,
    /// a multiple of 512, at most <see cref="MaxBytes"/>) and tells the device. Refuses to shrink (the
    /// data past the new end would be lost), read-only disks, and disks that are not files.
    /// </summary>
    /// <returns>True with the new size, or false with why it was refused.</returns>
    public bool Resize(string name, string bytesText, out string message)
    {
        if (!ulong.TryParse(bytesText, NumberStyles.None, CultureInfo.InvariantCulture, out ulong bytes) || bytes == 0 || bytes % BlockDevice.SectorSize != 0 || bytes > MaxBytes)
        {
            message = $"size '{Truncated(bytesText)}' is not a positive decimal number of bytes, a multiple of 512, at most {MaxBytes}";
            return false;
        }

        lock (_gate)
        {
            if (!_disks.TryGetValue(name, out Disk? disk))
            {
                message = $"no block device '{Truncated(name)}' (there are: {string.Join(", ", _disks.Keys)})";
                return false;
            }

            if (disk.Refresh is null || disk.Path is null)
            {
                message = $"{name} is not a file disk";
                return false;
            }

            if (disk.ReadOnly)
            {
                message = $"{name} is read-only";
                return false;
            }

            try
            {
                ulong current = disk.Refresh();
                if (bytes < current)
                {
                    message = $"{name} has {current} bytes: shrinking is refused (the data past the new end would be lost)";
                    return false;
                }

                if (bytes > current)
                {
                    Grow(disk.Path, bytes);
                    disk.Refresh();
                }

                ulong sectors = disk.Device.UpdateCapacity();
                message = string.Create(CultureInfo.InvariantCulture, $"{name} {sectors * BlockDevice.SectorSize} bytes ({sectors} sectors)");
                _logger.LogInformation("resize: {Message}", message);
                return true;
            }
            catch (Exception e) when (e is System.IO.IOException or UnauthorizedAccessException)
            {
                message = $"{name}: {e.Message}";
                return false;
            }
        }
    }

    /// <summary>
    /// ftruncate on a descriptor of our own, opened write-only with sharing allowed: .NET takes no
    /// advisory lock for that (the backend, or a lock=... option, may hold one on the image).
    /// </summary>
    private static void Grow(string path, ulong bytes)
    {
        using Microsoft.Win32.SafeHandles.SafeFileHandle handle = System.IO.File.OpenHandle(path, System.IO.FileMode.Open, System.IO.FileAccess.Write, System.IO.FileShare.ReadWrite | System.IO.FileShare.Delete);
        System.IO.RandomAccess.SetLength(handle, (long)bytes);
    }

    /// <summary>What a reply quotes of the client's text: at most 64 characters.</summary>
    private static string Truncated(string text) => text.Length <= 64 ? text : text[..64] + "...";

    private sealed record Disk(BlockDevice Device, Func<ulong>? Refresh, string? Path, bool ReadOnly);
}
