namespace Virtio.Bench.Soak;

/// <summary>What a read of a block shows against the <see cref="BlkLedger"/>.</summary>
internal enum ReadVerdict
{
    /// <summary>The last acknowledged write, or one posted after it whose acknowledgement was lost with a connection.</summary>
    Ok,

    /// <summary>An intact older generation (or a zero block) where a newer write was acknowledged: a lost acknowledged write.</summary>
    Lost,

    /// <summary>Neither zeros nor an intact pattern of this block: torn, misplaced or never written by us.</summary>
    Corrupt,
}
