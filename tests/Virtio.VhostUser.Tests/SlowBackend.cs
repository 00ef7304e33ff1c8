using System;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Blk.Backends;

namespace Virtio.VhostUser.Tests;

/// <summary>Completes every request after a delay, on a pool thread.</summary>
internal sealed class SlowBackend(IBlockBackend inner, TimeSpan delay) : IBlockBackend, IDisposable
{
    private readonly SemaphoreSlim _submitted = new(0);

    public ulong Capacity => inner.Capacity;

    public bool IsReadOnly => inner.IsReadOnly;

    public BlockBackendCapabilities Capabilities => inner.Capabilities;

    public bool WaitSubmitted(TimeSpan timeout) => _submitted.Wait(timeout);

    public void Submit(BlockIo io)
    {
        _submitted.Release();
        Task.Delay(delay).ContinueWith(_ => inner.Submit(io), TaskScheduler.Default);
    }

    public void Dispose()
    {
        _submitted.Dispose();
        (inner as IDisposable)?.Dispose();
    }
}
