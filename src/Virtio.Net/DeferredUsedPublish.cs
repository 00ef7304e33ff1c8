using System;
using System.Threading;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Net;

/// <summary>
/// One data queue's used-ring publish, deferred to the end of the calling thread's
/// <see cref="DeferredCalls"/> section: however many passes over the queue run in one section (an
/// I/O thread's wake-up, a vhost-user kick), used->idx moves once and the driver gets at most one
/// interrupt. <see cref="Gate"/> serializes the publish with the queue's processing, since the
/// section may end after the device's per-queue lock was released.
/// </summary>
/// <remarks>
/// <see cref="Request"/> is called while the queue is processed, under <see cref="Gate"/>; outside a
/// section it publishes at once. Recording the deferral allocates nothing (a cached delegate, this
/// object as its state, so repeated requests in one section are one entry).
/// </remarks>
internal sealed class DeferredUsedPublish
{
    private static readonly Action<object?> s_publish = static state => ((DeferredUsedPublish)state!).PublishNow();

    private readonly NetDevice _device;
    private readonly SplitVirtqueue _queue;

    public DeferredUsedPublish(NetDevice device, SplitVirtqueue queue)
    {
        _device = device;
        _queue = queue;
    }

    /// <summary>Held while the queue is processed and while its used entries are published.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Publishes the queue's used entries at the end of the current section (now, outside one).</summary>
    public void Request() => DeferredCalls.Defer(s_publish, this);

    private void PublishNow()
    {
        lock (Gate)
        {
            _device.PublishUsed(_queue);
        }
    }
}
