namespace Virtio.Bench;

/// <summary>One load run: where, how deep, how big, what, for how long, and how completions are noticed.</summary>
internal sealed record BlkOptions(string SocketPath, int QueueDepth, int BlockSize, IoPattern Pattern, double Seconds, NotifyMode Mode, bool Verify, int SizeMiB, int? BackendPid);
