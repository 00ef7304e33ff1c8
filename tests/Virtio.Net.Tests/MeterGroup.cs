using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// Tests that listen to the process-wide "Virtio.Net" meter: they run alone, after the parallel
/// tests, so no other device adds measurements while they count.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MeterGroup
{
    public const string Name = "Listens to the Virtio.Net meter";
}
