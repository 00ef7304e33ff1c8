namespace Virtio.Vmm.Tests;

/// <summary>What one VMM run gave: its exit code, the guest's serial output (stdout) and the VMM's log (stderr).</summary>
/// <param name="ExitCode">The process exit code.</param>
/// <param name="Serial">stdout: the guest's serial port.</param>
/// <param name="Log">stderr: the VMM's log.</param>
internal sealed record VmmResult(int ExitCode, string Serial, string Log)
{
    /// <summary>Both streams, for assertion messages.</summary>
    public override string ToString() => $"exit {ExitCode}\n--- serial ---\n{Serial}\n--- log ---\n{Log}";
}
