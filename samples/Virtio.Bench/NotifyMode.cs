namespace Virtio.Bench;

/// <summary>The --mode choices: how the driver learns of completions.</summary>
internal enum NotifyMode
{
    /// <summary>Spin on the used ring with used-buffer notifications suppressed.</summary>
    Poll,

    /// <summary>Ask for used-buffer notifications and wait on the call eventfd.</summary>
    Interrupt,
}
