using System;

namespace Virtio.Core.Threading;

/// <summary>A call scheduled on an <see cref="IoThread"/>: stored by value, so scheduling boxes nothing.</summary>
internal readonly record struct WorkItem(Action<object?> Work, object? State);
