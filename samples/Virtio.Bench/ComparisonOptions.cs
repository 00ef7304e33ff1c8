using System.CommandLine;

namespace Virtio.Bench;

/// <summary>The command-line options `compare` and `sweep` share, and their reading into <see cref="ComparisonSettings"/>.</summary>
internal sealed class ComparisonOptions
{
    private readonly Option<string?> _image = new("--image") { Description = "Raw image the file exports serve (default: a new file of --size-mib MiB in /dev/shm, removed after)." };
    private readonly Option<int> _sizeMiB = new("--size-mib") { Description = "Size of the image made when --image is not given, and of the null disks with --null.", DefaultValueFactory = _ => 256 };
    private readonly Option<double> _seconds;
    private readonly Option<int> _rounds = new("--rounds") { Description = "Rounds; each back end runs every case once per round, in rotating order; medians are reported.", DefaultValueFactory = _ => 3 };
    private readonly Option<int> _bs = new("--bs") { Description = "Bytes per request.", DefaultValueFactory = _ => 4096 };
    private readonly Option<string?> _daemonDll = new("--daemon-dll") { Description = "Virtio.VhostUserDaemon.dll (default: next to this bench's build output, samples/Virtio.VhostUserDaemon/bin/CONFIG/TFM/)." };
    private readonly Option<bool> _null = new("--null") { Description = "Null disks of --size-mib MiB instead of the image: our daemon's --blk null,size=N against qemu-storage-daemon's null-co export (read-zeroes=off: neither touches the data buffers)." };
    private readonly Option<string?> _oursKeys = new("--ours-keys") { Description = "K=V,... appended to our daemon's --blk spec after queues=1 (for example poll-us=50 for its adaptive polling, or engine=threads); passed through unchecked: the daemon rejects keys it does not know." };
    private readonly Option<bool> _qsdIoThread = new("--qsd-iothread") { Description = "Run qemu-storage-daemon's exports on an iothread (--object iothread,id=iot0,poll-max-ns=N and the export's iothread=iot0) instead of its main loop, which does not poll." };
    private readonly Option<int> _qsdPollMaxNs = new("--qsd-poll-max-ns") { Description = "With --qsd-iothread: the iothread's poll-max-ns (QEMU's default 32768; 0 turns its adaptive polling off).", DefaultValueFactory = _ => 32768 };

    public ComparisonOptions(double defaultSeconds)
    {
        _seconds = new Option<double>("--seconds") { Description = "Seconds per run.", DefaultValueFactory = _ => defaultSeconds };
    }

    public void AddTo(Command command)
    {
        command.Options.Add(_image);
        command.Options.Add(_sizeMiB);
        command.Options.Add(_seconds);
        command.Options.Add(_rounds);
        command.Options.Add(_bs);
        command.Options.Add(_daemonDll);
        command.Options.Add(_null);
        command.Options.Add(_oursKeys);
        command.Options.Add(_qsdIoThread);
        command.Options.Add(_qsdPollMaxNs);
    }

    /// <summary>The settings, or null with <paramref name="error"/> when one is out of range.</summary>
    public ComparisonSettings? Read(ParseResult r, out string? error)
    {
        var settings = new ComparisonSettings(
            r.GetValue(_image),
            r.GetValue(_sizeMiB),
            r.GetValue(_seconds),
            r.GetValue(_rounds),
            r.GetValue(_bs),
            r.GetValue(_daemonDll),
            r.GetValue(_null),
            r.GetValue(_oursKeys),
            r.GetValue(_qsdIoThread) ? r.GetValue(_qsdPollMaxNs) : null);
        error = settings.SizeMiB is < 1 or > (1 << 20) ? "--size-mib must be 1 to 1048576."
            : settings.Rounds is < 1 or > 1000 ? "--rounds must be 1 to 1000."
            : r.GetValue(_qsdPollMaxNs) < 0 ? "--qsd-poll-max-ns must be 0 or more."
            : settings.OursKeys is { } keys && (keys.Length == 0 || keys.StartsWith(',') || keys.EndsWith(',')) ? "--ours-keys is K=V[,K=V...]."
            : null;
        return error is null ? settings : null;
    }
}
