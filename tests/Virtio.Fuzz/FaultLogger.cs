using System;
using Microsoft.Extensions.Logging;

namespace Virtio.Fuzz;

/// <summary>
/// The library logs an exception its device code threw and turns it into DEVICE_NEEDS_RESET
/// (<c>VirtioDevice.NotifyQueue</c>); for a fuzz target that exception is the finding. This logger
/// keeps the first exception logged (at any level) and formats nothing else, so it costs nothing
/// on the hot path.
/// </summary>
internal sealed class FaultLogger : ILogger
{
    private Exception? _fault;

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    /// <summary>Only errors carry the exceptions looked for; the rest is not even formatted.</summary>
    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (exception is not null && _fault is null)
        {
            _fault = new InvariantViolationException($"device code threw ({eventId.Name}: {formatter(state, exception)})", exception);
        }
    }

    /// <summary>Throws the first exception logged since the last call, if any, and forgets it.</summary>
    public void ThrowIfFaulted()
    {
        Exception? fault = _fault;
        _fault = null;
        if (fault is not null)
        {
            throw fault;
        }
    }
}
