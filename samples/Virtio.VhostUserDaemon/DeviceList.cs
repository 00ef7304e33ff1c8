using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;

namespace Virtio.VhostUserDaemon;

/// <summary>
/// The devices to serve, from --blk and --net (repeatable) and a --config JSON file, each with its
/// socket: the value's <c>socket=PATH</c> key, or --socket for the one device without it.
/// </summary>
internal sealed class DeviceList
{
    private DeviceList(List<(BlkSpec, string)> blk, List<(string, string)> net)
    {
        Blk = blk;
        Net = net;
    }

    public IReadOnlyList<(BlkSpec Spec, string Socket)> Blk { get; }

    public IReadOnlyList<(string Tap, string Socket)> Net { get; }

    public IEnumerable<string> Sockets => Blk.Select(b => b.Socket).Concat(Net.Select(n => n.Socket));

    public static bool TryBuild(string[]? blkValues, string[]? netValues, string? configPath, string? socket, out DeviceList? devices, out string? error)
    {
        devices = null;
        var blkTexts = new List<string>(blkValues ?? []);
        var netTexts = new List<string>(netValues ?? []);
        if (configPath is not null && !TryReadConfig(configPath, blkTexts, netTexts, out error))
        {
            return false;
        }

        if (blkTexts.Count + netTexts.Count == 0)
        {
            error = "Give at least one device: --blk, --net or --config.";
            return false;
        }

        bool socketUsed = false;
        var blk = new List<(BlkSpec, string)>();
        foreach (string text in blkTexts)
        {
            if (!TryTakeSocket(text, socket, ref socketUsed, out string rest, out string? path, out error))
            {
                return false;
            }

            if (!BlkSpec.TryParse(rest, out BlkSpec? spec, out error))
            {
                return false;
            }

            blk.Add((spec!, path!));
        }

        var net = new List<(string, string)>();
        foreach (string text in netTexts)
        {
            if (!TryTakeSocket(text, socket, ref socketUsed, out string rest, out string? path, out error))
            {
                return false;
            }

            if (!rest.StartsWith("tap=", StringComparison.Ordinal) || rest.Length == 4 || rest.Contains(',', StringComparison.Ordinal))
            {
                error = $"--net expects tap=NAME[,socket=PATH], not '{text}'.";
                return false;
            }

            net.Add((rest[4..], path!));
        }

        var result = new DeviceList(blk, net);
        string? repeated = result.Sockets.GroupBy(s => s, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1)?.Key;
        if (repeated is not null)
        {
            error = $"The socket {repeated} is given to more than one device: each device needs its own.";
            return false;
        }

        if (socket is not null && !socketUsed)
        {
            error = "--socket is for the one device given without socket=; every device has its own.";
            return false;
        }

        devices = result;
        error = null;
        return true;
    }

    /// <summary>Splits the <c>socket=PATH</c> key off a device's value; without it, --socket (once).</summary>
    private static bool TryTakeSocket(string text, string? socket, ref bool socketUsed, out string rest, out string? path, out string? error)
    {
        string[] parts = text.Split(',');
        string[] sockets = parts.Where(p => p.StartsWith("socket=", StringComparison.Ordinal)).ToArray();
        rest = string.Join(',', parts.Where(p => !p.StartsWith("socket=", StringComparison.Ordinal)));
        error = null;
        path = sockets.Length == 1 ? sockets[0]["socket=".Length..] : null;
        if (sockets.Length > 1 || path?.Length == 0)
        {
            error = $"'{text}': give one socket=PATH.";
            return false;
        }

        if (path is null)
        {
            if (socket is null || socketUsed)
            {
                error = $"'{text}' has no socket=PATH, and --socket is {(socket is null ? "not given" : "taken by another device")}.";
                return false;
            }

            path = socket;
            socketUsed = true;
        }

        return true;
    }

    /// <summary>{"blk": ["...", ...], "net": ["...", ...]}: each string as the flag's value.</summary>
    private static bool TryReadConfig(string path, List<string> blk, List<string> net, out string? error)
    {
        error = null;
        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                error = $"--config {path}: expected an object with \"blk\" and/or \"net\" arrays of strings.";
                return false;
            }

            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                List<string>? target = property.Name switch { "blk" => blk, "net" => net, _ => null };
                if (target is null || property.Value.ValueKind != JsonValueKind.Array
                    || property.Value.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
                {
                    error = $"--config {path}: \"{property.Name}\" is not \"blk\" or \"net\" with an array of strings.";
                    return false;
                }

                target.AddRange(property.Value.EnumerateArray().Select(e => e.GetString()!));
            }

            return true;
        }
        catch (JsonException exception)
        {
            error = $"--config {path}: not JSON: {exception.Message}";
            return false;
        }
    }
}
