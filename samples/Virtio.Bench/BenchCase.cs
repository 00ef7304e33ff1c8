namespace Virtio.Bench;

/// <summary>One cell of a comparison: how completions are noticed, how deep, which pattern.</summary>
internal readonly record struct BenchCase(NotifyMode Mode, int QueueDepth, IoPattern Pattern);
