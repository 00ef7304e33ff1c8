using System;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Virtio.Testing;

/// <summary>An <see cref="ILogger"/> that keeps every message, for asserting what a device logged.</summary>
/// <remarks>Thread-safe: a device logs from its own threads while a test reads <see cref="Entries"/>.
/// Every level is enabled, so Debug messages are formatted too.</remarks>
public sealed class CapturingLogger : ILogger
{
    /// <summary>Messages logged, in order, with the exception each was logged with.</summary>
    public ConcurrentQueue<(LogLevel Level, EventId EventId, string Message, Exception? Exception)> Entries { get; } = new();

    /// <inheritdoc />
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    /// <inheritdoc />
    public bool IsEnabled(LogLevel logLevel) => true;

    /// <inheritdoc />
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        Entries.Enqueue((logLevel, eventId, formatter(state, exception), exception));
    }
}
