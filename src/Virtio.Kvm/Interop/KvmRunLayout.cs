namespace Virtio.Kvm.Interop;

/// <summary>
/// Byte offsets into the shared struct kvm_run page (checked with offsetof on this machine's
/// headers). The union of exit details starts at 32.
/// </summary>
internal static class KvmRunLayout
{
    public const int ImmediateExit = 1;
    public const int ExitReason = 8;

    public const int IoDirection = 32;
    public const int IoSize = 33;
    public const int IoPort = 34;
    public const int IoCount = 36;
    public const int IoDataOffset = 40;

    public const int MmioPhysAddr = 32;
    public const int MmioData = 40;
    public const int MmioLength = 48;
    public const int MmioIsWrite = 52;

    public const int InternalSuberror = 32;
    public const int InternalNData = 36;
    public const int InternalData = 40;

    public const int FailEntryReason = 32;
    public const int FailEntryCpu = 40;

    public const byte IoDirectionOut = 1;

    public const uint ExitUnknown = 0;
    public const uint ExitException = 1;
    public const uint ExitIo = 2;
    public const uint ExitHlt = 5;
    public const uint ExitMmio = 6;
    public const uint ExitShutdown = 8;
    public const uint ExitFailEntry = 9;
    public const uint ExitIntr = 10;
    public const uint ExitInternalError = 17;
    public const uint ExitSystemEvent = 24;
}
