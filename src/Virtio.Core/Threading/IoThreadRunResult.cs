namespace Virtio.Core.Threading;

/// <summary>What <see cref="IoThread.RunAndWait(System.Action{object?}, object?, System.TimeSpan)"/> did.</summary>
public enum IoThreadRunResult
{
    /// <summary>The work ran to its end (inline, or on the I/O thread within the timeout).</summary>
    Ran,

    /// <summary>The thread has stopped and accepts no more work: nothing ran.</summary>
    Stopped,

    /// <summary>The work did not finish within the timeout; it is still queued or running.</summary>
    TimedOut,
}
