namespace Virtio.Fuzz.Targets;

/// <summary>Which queue of the net device a <see cref="NetTarget"/> feeds.</summary>
internal enum NetFuzzMode
{
    /// <summary><c>net-tx</c>: transmit chains.</summary>
    Transmit,

    /// <summary><c>net-ctrl</c>: control-queue commands.</summary>
    Control,

    /// <summary><c>net-rx</c>: frames from the peer (another guest's header and bytes) into receive chains of fuzzed shape.</summary>
    Receive,
}
