namespace Virtio.Core.Transport.Pci;

/// <summary>
/// The embedder's side of a PCI function's MSI-X capability: where the function's vectors go. The
/// function keeps the MSI-X table, the pending bits and every mask; the embedder only learns what each
/// vector's message is and raises the ones the function tells it to (on KVM, an irqfd on an MSI route
/// per vector; elsewhere, a write into the embedder's interrupt controller).
/// </summary>
/// <remarks>
/// <see cref="Configure"/> is called on the thread that writes the function's config space or MSI-X
/// table (a vCPU thread). <see cref="Raise"/> is called from the thread that completes the device's
/// work (usually an I/O thread), and must be safe from any thread and must not block.
/// </remarks>
public interface IMsiXDelivery
{
    /// <summary>
    /// Vector <paramref name="vector"/>'s message or its effective mask changed: called whenever the
    /// guest rewrites the table entry, masks or unmasks it, or changes MSI-X Enable, Function Mask or Bus
    /// Master Enable (only for the vectors whose effective mask or message changed). Before the first call a
    /// vector is masked with address and data 0, as after a PCI reset.
    /// </summary>
    /// <param name="vector">The table entry's index.</param>
    /// <param name="message">The entry's address and data as the guest programmed them.</param>
    /// <param name="masked">
    /// True while the vector may not be delivered: its own Mask bit, the Function Mask, MSI-X Enable clear,
    /// or Bus Master Enable clear in the command register (a function that may not master the bus sends no
    /// message; PCI 3.0 §6.8.3.3).
    /// </param>
    void Configure(ushort vector, MsiMessage message, bool masked);

    /// <summary>
    /// Delivers vector <paramref name="vector"/>'s message to the guest. The function calls it only for a
    /// vector that is configured and unmasked; a masked vector's interrupt is held as its pending bit and
    /// raised when the guest unmasks it.
    /// </summary>
    /// <param name="vector">The table entry's index.</param>
    void Raise(ushort vector);
}
