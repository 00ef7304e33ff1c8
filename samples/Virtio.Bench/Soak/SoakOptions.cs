namespace Virtio.Bench.Soak;

/// <summary>One soak run, as the `soak` subcommand's flags give it.</summary>
/// <param name="BlkSocket">Our daemon's vhost-user-blk socket.</param>
/// <param name="NetSocket">Our daemon's vhost-user-net socket (its tap in a namespace answering 10.0.2.1), or null for blk only.</param>
/// <param name="Minutes">How long the load runs (the verify pass comes after).</param>
/// <param name="SampleSeconds">Seconds between samples of the daemons' fds and RSS.</param>
/// <param name="WarmUpFraction">The leading fraction of the run whose samples the slopes leave out.</param>
/// <param name="ReconnectMinSeconds">Shortest connection.</param>
/// <param name="ReconnectMaxSeconds">Longest connection.</param>
/// <param name="AbruptPercent">Share of disconnects that close the socket with requests in flight.</param>
/// <param name="MemTableSeconds">Mean seconds between memory-table changes on each connection kind.</param>
/// <param name="QueueDepth">Blk requests kept in flight at most.</param>
/// <param name="BlkIops">Blk requests per second at most.</param>
/// <param name="WritePercent">Share of blk requests that are writes.</param>
/// <param name="SizeMiB">Blk region used (from the device's start).</param>
/// <param name="NetPps">Net frames sent per second at most.</param>
/// <param name="CsvPath">Where the samples go.</param>
/// <param name="MaxFdSlope">Fail when a daemon's fd count grows faster (per minute).</param>
/// <param name="MaxRssSlope">Fail when a daemon's RSS grows faster (KiB per minute).</param>
/// <param name="Seed">Seed of the session lengths, disconnect kinds and block choice.</param>
internal sealed record SoakOptions(
    string BlkSocket,
    string? NetSocket,
    double Minutes,
    double SampleSeconds,
    double WarmUpFraction,
    double ReconnectMinSeconds,
    double ReconnectMaxSeconds,
    int AbruptPercent,
    double MemTableSeconds,
    int QueueDepth,
    int BlkIops,
    int WritePercent,
    int SizeMiB,
    int NetPps,
    string CsvPath,
    double MaxFdSlope,
    double MaxRssSlope,
    int Seed);
