using System.Collections.Generic;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

public sealed class GuestNotifierTests
{
    [Fact]
    public void EventFdGuestNotifier_InASection_SignalsOncePerBurst()
    {
        using var irqfd = EventFd.Create();
        var notifier = new EventFdGuestNotifier(irqfd);

        for (int i = 0; i < 32; i++)
        {
            notifier.Notify(InterruptReason.UsedBuffer, 0);
        }

        Assert.True(irqfd.TryConsume(out ulong withoutSection));

        using (DeferredCalls.Section())
        {
            for (int i = 0; i < 32; i++)
            {
                notifier.Notify(InterruptReason.UsedBuffer, 0);
            }

            Assert.False(irqfd.TryConsume(out _));
        }

        Assert.True(irqfd.TryConsume(out ulong withSection));
        Assert.Equal(32UL, withoutSection);
        Assert.Equal(1UL, withSection);
    }

    [Fact]
    public void CallbackGuestNotifier_PassesReasonAndQueue()
    {
        var seen = new List<(InterruptReason, ushort)>();
        var notifier = new CallbackGuestNotifier((reason, queue) => seen.Add((reason, queue)));

        notifier.Notify(InterruptReason.UsedBuffer, 3);
        notifier.Notify(InterruptReason.ConfigurationChange, 0);

        Assert.Equal([(InterruptReason.UsedBuffer, (ushort)3), (InterruptReason.ConfigurationChange, (ushort)0)], seen);
    }
}
