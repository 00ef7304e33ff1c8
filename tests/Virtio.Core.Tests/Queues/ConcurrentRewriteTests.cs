using System;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// A guest may rewrite its descriptors, indirect tables and avail ring while the device walks them
/// (a second vCPU). The walk reads each field once, so whatever it sees is one consistent value per
/// field: no exception, no buffer outside guest memory, and a bounded number of steps per chain.
/// </summary>
public sealed class ConcurrentRewriteTests
{
    private const ushort Size = 16;
    private const int Pops = 20_000;
    private const ushort Next = 1, Write = 2, Indirect = 4;

    [Fact]
    public async Task Walks_WhileASecondThreadRewritesTheTables_NeverThrow_AndStayBounded()
    {
        using var driver = new GuestDriver(Size, indirect: true);
        var queue = new SplitVirtqueue(driver.Memory, 0, Size);
        queue.IndirectDescriptors = true;
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));
        GuestAddress indirectTable = driver.BlockAddress(10);
        ulong heap = driver.BlockAddress(0).Value;

        using var stop = new CancellationTokenSource();
        using var rewriting = new ManualResetEventSlim();
        var rewriter = Task.Run(
            () =>
            {
                // Fixed seed: a failure names the same byte stream. Descriptors mostly point into
                // the heap, with random lengths, flags (NEXT, WRITE, INDIRECT) and next links,
                // some past the table; now and then an address or length is garbage.
                var random = new Random(20261203);
                for (int written = 0; !stop.IsCancellationRequested; written++)
                {
                    if (written == 4 * Size)
                    {
                        rewriting.Set();
                    }

                    int slot = random.Next(Size * 2);
                    GuestAddress table = slot < Size ? driver.DescriptorTable : indirectTable;
                    ulong address = random.Next(8) == 0 ? (ulong)random.NextInt64() : heap + (ulong)random.Next(64 * 4096);
                    uint length = random.Next(8) == 0 ? (uint)random.Next() : (uint)random.Next(1, 8192);
                    ushort flags = (ushort)random.Next(8);
                    ushort next = (ushort)random.Next(Size + 2);
                    if ((flags & Indirect) != 0)
                    {
                        address = random.Next(4) == 0 ? address : indirectTable.Value;
                        length = (uint)(16 * random.Next(0, Size + 2));
                    }

                    driver.WriteDescriptorAt(table, slot % Size, address, length, flags, next);
                }
            },
            TestContext.Current.CancellationToken);

        var random = new Random(1203);
        int popped = 0, broken = 0;
        try
        {
            // The device starts once the tables hold the rewriter's values, however late its thread ran.
            Assert.True(rewriting.Wait(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken), "the rewriter did not start");
            for (int i = 0; i < Pops; i++)
            {
                if (!queue.IsReady || queue.Error != QueueError.None)
                {
                    broken++;
                    queue.Reset();
                    driver.Configure(queue);
                    queue.IndirectDescriptors = true;
                    driver.SetAvailIndex(0);
                    Assert.True(queue.TryActivate(out _));
                }

                driver.PutOnAvailRing((ushort)random.Next(Size));
                driver.SetAvailIndex(driver.AvailIndex);
                if (!queue.TryPopChain(out DescriptorChain chain))
                {
                    continue;
                }

                popped++;
                int steps = 0;
                while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
                {
                    steps++;
                    Assert.True(driver.Memory.TryGetSpan(buffer.Address, buffer.Length, out _), "a buffer outside guest memory");
                    Assert.True(steps <= 2 * Size, "the walk did not stop");
                }

                if (chain.Error == QueueError.None)
                {
                    queue.AddUsed(chain.HeadIndex, (uint)random.Next(16384));
                    queue.PublishUsed();
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await rewriter;
        }

        // Both outcomes happened: chains walked to their end, and the rewriting broke the queue.
        Assert.True(popped > 0, "nothing was popped");
        Assert.True(broken > 0, "the rewriting never broke the queue");
        queue.Reset();
        Assert.Equal(0, queue.InFlightCount);
    }
}
