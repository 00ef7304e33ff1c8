using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// What a packed ring's in-flight region said after an earlier back end: where the ring stands and
/// the chains it took and never returned, as copies of their ring descriptors, oldest first.
/// </summary>
/// <param name="Start">The positions to start the ring at (past the chains in flight).</param>
/// <param name="Descriptors">The chains' descriptors in the packed layout, one chain after another.</param>
/// <param name="ChainLengths">Descriptors per chain.</param>
internal sealed record PackedRecovery(PackedBase Start, byte[] Descriptors, ushort[] ChainLengths);
