using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// A QMP connection to one QEMU (<c>-qmp unix:PATH,server=on,wait=off</c>): the greeting and
/// <c>qmp_capabilities</c>, then commands with their returns; the events QEMU sends meanwhile are kept
/// for <see cref="WaitForEventAsync"/>. One caller at a time; every read is bounded.
/// </summary>
internal sealed class QmpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly StreamWriter _writer;
    private readonly List<JsonElement> _events = new();

    private QmpClient(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(stream);
        _writer = new StreamWriter(stream) { AutoFlush = true, NewLine = "\n" };
    }

    /// <summary>The events received so far, oldest first.</summary>
    public IReadOnlyList<JsonElement> Events => _events;

    /// <summary>Connects to <paramref name="path"/> (waiting, within <paramref name="limit"/>, for QEMU to
    /// create it) and leaves capabilities negotiation mode.</summary>
    /// <exception cref="TimeoutException">No QMP server answered within the limit.</exception>
    public static async Task<QmpClient> ConnectAsync(string path, TimeSpan limit, CancellationToken cancellationToken)
    {
        long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken).ConfigureAwait(false);
                var client = new QmpClient(socket);
                try
                {
                    using var bound = Bound(TimeSpan.FromMilliseconds(Math.Max(1000, deadline - Environment.TickCount64)), cancellationToken);
                    await client.ReadAsync(bound.Token).ConfigureAwait(false); // {"QMP": {...}}
                    await client.ExecuteAsync("qmp_capabilities", null, TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
                    return client;
                }
                catch
                {
                    client.Dispose();
                    throw;
                }
            }
            catch (SocketException) when (Environment.TickCount64 < deadline)
            {
                socket.Dispose();
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new TimeoutException($"no QMP server at {path} within {limit.TotalSeconds:F0} s: {e.Message}", e);
            }
        }
    }

    /// <summary>Runs <paramref name="command"/>; returns its "return" value.</summary>
    /// <exception cref="InvalidOperationException">QEMU answered with an error.</exception>
    /// <exception cref="TimeoutException">No answer within <paramref name="limit"/>.</exception>
    public async Task<JsonElement> ExecuteAsync(string command, object? arguments, TimeSpan limit, CancellationToken cancellationToken)
    {
        var request = new Dictionary<string, object> { ["execute"] = command };
        if (arguments is not null)
        {
            request["arguments"] = arguments;
        }

        using var bound = Bound(limit, cancellationToken);
        try
        {
            await _writer.WriteLineAsync(JsonSerializer.Serialize(request).AsMemory(), bound.Token).ConfigureAwait(false);
            while (true)
            {
                JsonElement message = await ReadAsync(bound.Token).ConfigureAwait(false);
                if (message.TryGetProperty("return", out JsonElement result))
                {
                    return result;
                }

                if (message.TryGetProperty("error", out JsonElement error))
                {
                    throw new InvalidOperationException($"QMP {command}: {error}");
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"QMP {command}: no answer within {limit.TotalSeconds:F0} s");
        }
    }

    /// <summary>Waits for the first event (already received or yet to come) that <paramref name="match"/> accepts.</summary>
    /// <exception cref="TimeoutException">None came within <paramref name="limit"/>.</exception>
    public async Task<JsonElement> WaitForEventAsync(Func<JsonElement, bool> match, TimeSpan limit, CancellationToken cancellationToken)
    {
        int seen = 0;
        using var bound = Bound(limit, cancellationToken);
        try
        {
            while (true)
            {
                for (; seen < _events.Count; seen++)
                {
                    if (match(_events[seen]))
                    {
                        return _events[seen];
                    }
                }

                await ReadAsync(bound.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no matching QMP event within {limit.TotalSeconds:F0} s; events: {string.Join(", ", _events)}");
        }
    }

    /// <summary>Whether <paramref name="message"/> is event <paramref name="name"/> whose data's "status" is one of <paramref name="statuses"/> (any when none given).</summary>
    public static bool IsEvent(JsonElement message, string name, params string[] statuses) =>
        message.GetProperty("event").GetString() == name
        && (statuses.Length == 0 || (message.TryGetProperty("data", out JsonElement data) && data.TryGetProperty("status", out JsonElement status)
            && Array.IndexOf(statuses, status.GetString()) >= 0));

    public void Dispose()
    {
        _reader.Dispose();
        _writer.Dispose();
        _socket.Dispose();
    }

    private static CancellationTokenSource Bound(TimeSpan limit, CancellationToken cancellationToken)
    {
        var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(limit);
        return bound;
    }

    /// <summary>The next message; events are also kept in <see cref="Events"/>.</summary>
    private async Task<JsonElement> ReadAsync(CancellationToken cancellationToken)
    {
        string line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new IOException("QMP: QEMU closed the connection");
        JsonElement message = JsonDocument.Parse(line).RootElement.Clone();
        if (message.TryGetProperty("event", out _))
        {
            _events.Add(message);
        }

        return message;
    }
}
