using System;
using System.Runtime.InteropServices;

namespace Virtio.Core.Threading;

/// <summary>
/// One fd watched by an <see cref="IoThread"/>: the handler, its state and the token put in
/// epoll_event.data. Disposing it unregisters the fd.
/// </summary>
internal sealed class FdRegistration : IDisposable
{
    private readonly IoThread _owner;
    private volatile bool _active = true;

    public FdRegistration(IoThread owner, SafeHandle handle, Action<object?> handler, object? state, int slot, ulong token)
    {
        _owner = owner;
        Handle = handle;
        Handler = handler;
        State = state;
        Slot = slot;
        Token = token;
    }

    public SafeHandle Handle { get; }

    public Action<object?> Handler { get; }

    public object? State { get; }

    public int Slot { get; }

    public ulong Token { get; }

    /// <summary>False once unregistered: the I/O thread checks it before each call of the handler.</summary>
    public bool IsActive => _active;

    /// <summary>Called by the owner with its lock held; returns false if already inactive.</summary>
    public bool Deactivate()
    {
        if (!_active)
        {
            return false;
        }

        _active = false;
        return true;
    }

    public void Dispose() => _owner.Unregister(this);
}
