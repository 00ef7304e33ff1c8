using System;
using System.Threading;

namespace Virtio.Core.Threading;

/// <summary>One <see cref="IoThread.RunAndWait(Action{object?}, object?, TimeSpan)"/> in flight: the work, its state, and the signal it sets when done.</summary>
internal sealed class IoThreadCall(Action<object?> work, object? state)
{
    /// <summary>The scheduled callback: runs the work, then signals (also when the work throws).</summary>
    public static readonly Action<object?> Run = static call => ((IoThreadCall)call!).Invoke();

    public ManualResetEventSlim Done { get; } = new();

    private void Invoke()
    {
        try
        {
            work(state);
        }
        finally
        {
            Done.Set();
        }
    }
}
