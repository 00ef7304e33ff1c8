using Xunit;

namespace Virtio.Core.Tests;

/// <summary>
/// Tests that count the entries of /proc/self/fd: they run alone, after the parallel tests, so no
/// other test opens or closes descriptors while they count.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FdCountingGroup
{
    public const string Name = "Counts /proc/self/fd";
}
