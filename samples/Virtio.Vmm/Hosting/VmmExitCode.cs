namespace Virtio.Vmm.Hosting;

/// <summary>The VMM's own exit codes; any other code is the value the guest wrote to the exit port.</summary>
internal static class VmmExitCode
{
    /// <summary>The guest's value did not fit in an exit code (more than 255).</summary>
    public const int GuestValueTooLarge = 255;

    /// <summary>The VMM could not boot the guest or the guest failed (bad ELF, no KVM, emulation failure, triple fault).</summary>
    public const int Failure = 125;

    /// <summary>Stopped by Ctrl+C or SIGTERM before the guest exited.</summary>
    public const int Interrupted = 130;
}
