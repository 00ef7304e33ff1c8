namespace Virtio.VhostUserDaemon;

/// <summary>Who may connect and what memory they may share: --allow-uid and --allow-unsealed-memory.</summary>
/// <param name="UserIds">The allowed peer user ids, or null for any.</param>
/// <param name="AllowUnsealedMemory">Whether guest memory without F_SEAL_SHRINK is mapped.</param>
internal sealed record Access(uint[]? UserIds, bool AllowUnsealedMemory);
