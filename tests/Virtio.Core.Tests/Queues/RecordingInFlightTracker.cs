using System;
using System.Collections.Generic;
using Virtio.Core.Queues;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// An <see cref="IInFlightTracker"/> that keeps what a vhost-user inflight region would: heads taken
/// and not yet published (with the order they were taken in), and the batch since the last publish.
/// It records every call, and throws on a call the seam promises never to make (a head taken twice,
/// a publish whose distance is not the batch size), which fails the test that drove the queue.
/// </summary>
internal sealed class RecordingInFlightTracker : IInFlightTracker
{
    private readonly Dictionary<ushort, long> _inFlight = [];
    private readonly List<ushort> _batch = [];
    private readonly HashSet<ushort> _awaitingResubmit = [];
    private long _counter;
    private ushort? _usedIdx;

    public List<string> Calls { get; } = [];

    /// <summary>Heads taken and not yet published, oldest first: what a restarted back end resubmits.</summary>
    public ushort[] InFlightOldestFirst()
    {
        var heads = new List<ushort>(_inFlight.Keys);
        heads.Sort((a, b) => _inFlight[a].CompareTo(_inFlight[b]));
        return [.. heads];
    }

    public bool IsInFlight(ushort head) => _inFlight.ContainsKey(head);

    public int InFlightCount => _inFlight.Count;

    public void ChainTaken(ushort head)
    {
        Calls.Add($"taken {head}");
        if (_awaitingResubmit.Remove(head))
        {
            return; // taken again after a restart: still in flight, still as old
        }

        if (!_inFlight.TryAdd(head, ++_counter))
        {
            throw new InvalidOperationException($"Head {head} taken while still in flight.");
        }
    }

    public void ChainUsed(ushort head)
    {
        Calls.Add($"used {head}");
        if (!_inFlight.ContainsKey(head) || _batch.Contains(head))
        {
            throw new InvalidOperationException($"Head {head} used but not in flight (or twice in a batch).");
        }

        _batch.Add(head);
    }

    public void UsedPublished(ushort usedIdx)
    {
        Calls.Add($"published {usedIdx}");
        if (_usedIdx is ushort previous && (ushort)(usedIdx - previous) != _batch.Count)
        {
            throw new InvalidOperationException($"used idx moved from {previous} to {usedIdx} for a batch of {_batch.Count}.");
        }

        foreach (ushort head in _batch)
        {
            _inFlight.Remove(head);
        }

        _batch.Clear();
        _usedIdx = usedIdx;
    }

    /// <summary>
    /// The device died and a new one starts at <paramref name="usedIdx"/>: used elements it never
    /// published are lost with it (their heads stay in flight), and every head in flight is due again.
    /// </summary>
    public void Restarted(ushort usedIdx)
    {
        _batch.Clear();
        _usedIdx = usedIdx;
        _awaitingResubmit.Clear();
        _awaitingResubmit.UnionWith(_inFlight.Keys);
    }
}
