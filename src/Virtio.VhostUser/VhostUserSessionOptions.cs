using System;

namespace Virtio.VhostUser;

/// <summary>What <see cref="VhostUserServer"/>'s settings make of each connection, read when it starts.</summary>
/// <param name="DrainTimeout">How long stopping a ring waits for its in-flight requests.</param>
/// <param name="MaxMemoryBytes">The most bytes the connection's memory table may map.</param>
/// <param name="AllowUnsealedMemory">Whether shared memory fds without F_SEAL_SHRINK are mapped.</param>
internal sealed record VhostUserSessionOptions(TimeSpan DrainTimeout, ulong MaxMemoryBytes, bool AllowUnsealedMemory);
